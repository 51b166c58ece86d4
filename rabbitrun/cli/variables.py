"""`rabbitrun variables set | get | list | delete | import | export`."""

from __future__ import annotations

import json

import click

from rabbitrun.cli.common import read_json_object, settings_from, write_json


@click.group()
def variables() -> None:
    """Variables (encrypted at rest when a fernet_key is configured)."""


@variables.command("set")
@click.argument("key")
@click.argument("value")
@click.option("--description")
@click.option("--json", "as_json", is_flag=True, help="VALUE is JSON; store it serialised.")
@click.pass_context
def set_(ctx: click.Context, key: str, value: str, description: str | None, as_json: bool) -> None:
    from rabbitrun import client
    from rabbitrun.errors import ConfigError

    try:
        parsed = json.loads(value) if as_json else value
    except ValueError as exc:
        raise ConfigError(f"--json given but the value of {key} is not valid JSON: {exc}", key=key) from exc
    client.data_access(settings_from(ctx)).variables.set(key, parsed, serialize_json=as_json, description=description)
    click.echo(f"variable {key} set")


@variables.command("get")
@click.argument("key")
@click.option("--default", "default", help="Print this instead of failing when the variable is missing.")
@click.pass_context
def get(ctx: click.Context, key: str, default: str | None) -> None:
    from rabbitrun import client

    store = client.data_access(settings_from(ctx)).variables
    click.echo(store.get(key) if default is None else store.get(key, default))


@variables.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """Keys and values; values of sensitive keys are masked."""
    from rabbitrun import client
    from rabbitrun.data.variables import masked_value

    settings = settings_from(ctx)
    for info in client.data_access(settings).variables.list():
        click.echo(f"{info.key}\t{masked_value(info.key, info.value, settings)}\t{info.description or ''}")


@variables.command("delete")
@click.argument("key")
@click.pass_context
def delete(ctx: click.Context, key: str) -> None:
    from rabbitrun import client
    from rabbitrun.errors import VariableNotFound

    if not client.data_access(settings_from(ctx)).variables.delete(key):
        raise VariableNotFound(key)
    click.echo(f"variable {key} deleted")


@variables.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def import_(ctx: click.Context, file: str) -> None:
    """Import {"key": value, ...} from a JSON file."""
    from rabbitrun import client

    data = read_json_object(file)
    click.echo(f"{client.data_access(settings_from(ctx)).variables.import_(data)} variable(s) imported")


@variables.command("export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@click.pass_context
def export(ctx: click.Context, file: str) -> None:
    """Export all variables to a JSON file (values in clear: protect the file)."""
    from rabbitrun import client

    data = client.data_access(settings_from(ctx)).variables.export()
    write_json(file, data)
    click.echo(f"{len(data)} variable(s) exported to {file}")
