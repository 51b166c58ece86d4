"""`rabbitrun connections add | get | list | delete | import | export`, and `rotate-fernet-key`."""

from __future__ import annotations

import json

import click

from rabbitrun.cli.common import read_json_object, settings_from, write_json


@click.group()
def connections() -> None:
    """Connections (password and extra encrypted at rest when a fernet_key is configured)."""


@connections.command("add")
@click.argument("conn_id")
@click.option("--conn-uri", help="e.g. postgresql://user:p%40ss@db:5432/app?sslmode=require")
@click.option("--conn-type")
@click.option("--conn-host")
@click.option("--conn-schema")
@click.option("--conn-login")
@click.option("--conn-password")
@click.option("--conn-port", type=int)
@click.option("--conn-extra", help="JSON object")
@click.option("--conn-description")
@click.pass_context
def add(
    ctx: click.Context,
    conn_id: str,
    conn_uri: str | None,
    conn_type: str | None,
    conn_host: str | None,
    conn_schema: str | None,
    conn_login: str | None,
    conn_password: str | None,
    conn_port: int | None,
    conn_extra: str | None,
    conn_description: str | None,
) -> None:
    from rabbitrun import client
    from rabbitrun.data.connections import Connection
    from rabbitrun.errors import ConfigError

    if bool(conn_uri) == bool(conn_type):
        raise ConfigError("give either --conn-uri or --conn-type (with --conn-host ...)", key="--conn-uri")
    conn = (
        Connection.from_uri(conn_id, conn_uri)
        if conn_uri
        else Connection(
            conn_id,
            conn_type or "",
            conn_host,
            conn_schema,
            conn_login,
            conn_password,
            conn_port,
            conn_extra,
            conn_description,
        )
    )
    client.data_access(settings_from(ctx)).connections.add(conn)
    click.echo(f"connection {conn_id} added: {conn.get_uri(mask_password=True)}")


@connections.command("get")
@click.argument("conn_id")
@click.option("--show-password", is_flag=True)
@click.pass_context
def get(ctx: click.Context, conn_id: str, show_password: bool) -> None:
    from rabbitrun import client

    conn = client.data_access(settings_from(ctx)).connections.get(conn_id)
    click.echo(json.dumps((conn if show_password else conn.masked()).as_dict(), indent=2))


@connections.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """conn_id, type and URI with the password masked."""
    from rabbitrun import client

    for conn in client.data_access(settings_from(ctx)).connections.list():
        click.echo(f"{conn.conn_id}\t{conn.conn_type}\t{conn.get_uri(mask_password=True)}")


@connections.command("delete")
@click.argument("conn_id")
@click.pass_context
def delete(ctx: click.Context, conn_id: str) -> None:
    from rabbitrun import client
    from rabbitrun.errors import ConnectionNotFound

    if not client.data_access(settings_from(ctx)).connections.delete(conn_id):
        raise ConnectionNotFound(conn_id)
    click.echo(f"connection {conn_id} deleted")


@connections.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def import_(ctx: click.Context, file: str) -> None:
    """Import {"conn_id": {"conn_type": ..., "host": ...}, ...} from a JSON file."""
    from rabbitrun import client

    data = read_json_object(file)
    click.echo(f"{client.data_access(settings_from(ctx)).connections.import_(data)} connection(s) imported")


@connections.command("export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@click.pass_context
def export(ctx: click.Context, file: str) -> None:
    """Export all connections to a JSON file (passwords in clear: protect the file)."""
    from rabbitrun import client

    data = client.data_access(settings_from(ctx)).connections.export()
    write_json(file, data)
    click.echo(f"{len(data)} connection(s) exported to {file}")


@click.command("rotate-fernet-key")
@click.pass_context
def rotate_fernet_key(ctx: click.Context) -> None:
    """Re-encrypt every Variable and Connection with the first key of [core] fernet_key."""
    from rabbitrun import client

    variables, conns = client.rotate_fernet_key(settings_from(ctx))
    click.echo(f"re-encrypted {variables} variable(s) and {conns} connection(s) with the first key")
