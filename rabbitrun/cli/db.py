"""`rabbitrun db init | check | reset`."""

from __future__ import annotations

import click

from rabbitrun.cli.main import settings_from


@click.group()
def db() -> None:
    """The metadata database (SQLite by default, PostgreSQL in production)."""


@db.command("init")
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create or upgrade the schema (idempotent)."""
    from rabbitrun import client
    from rabbitrun.settings import mask_url

    settings = settings_from(ctx)
    revision = client.db_init(settings)
    click.echo(f"database {mask_url(str(settings.database.url))} at revision {revision}")


@db.command("check")
@click.pass_context
def check(ctx: click.Context) -> None:
    """Exit non-zero unless the database is reachable and migrated."""
    from rabbitrun import client
    from rabbitrun.settings import mask_url

    settings = settings_from(ctx)
    revision = client.db_check(settings)
    click.echo(f"ok: {mask_url(str(settings.database.url))} at revision {revision}")


@db.command("reset")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def reset(ctx: click.Context, yes: bool) -> None:
    """Drop every table and recreate the schema. Destroys all metadata."""
    from rabbitrun import client

    settings = settings_from(ctx)
    if not yes:
        click.confirm("This deletes all rabbitrun metadata. Continue?", abort=True)
    click.echo(f"database reset to revision {client.db_reset(settings)}")
