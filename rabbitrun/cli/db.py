"""`rabbitrun db init | check | reset`."""

from __future__ import annotations

import click

from rabbitrun.cli.common import settings_from


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
    written = client.ensure_fernet_key(settings)
    if written:
        click.echo(f"generated a Fernet key for Variables and Connections into {written} (mode 0600)")
    written = client.ensure_control_key(settings)
    if written:
        click.echo(f"generated the [control] secret_key that signs inspect/control requests into {written} (mode 0600)")


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


@db.command("clean")
@click.option("--before", "before", required=True, help="Delete rows older than this ISO timestamp (UTC if naive).")
@click.option("--tables", default="xcom", show_default=True, help="Comma-separated: xcom, task_attempt, dag_run.")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@click.pass_context
def clean(ctx: click.Context, before: str, tables: str, dry_run: bool) -> None:
    """Delete old XComs (and other history) by age, like `airflow db clean`."""
    from datetime import UTC, datetime

    from rabbitrun import client
    from rabbitrun.errors import ConfigError

    try:
        cutoff = datetime.fromisoformat(before)
    except ValueError as exc:
        raise ConfigError(f"--before {before!r} is not an ISO timestamp", key="--before") from exc
    cutoff = cutoff if cutoff.tzinfo else cutoff.replace(tzinfo=UTC)
    counts = client.clean_db(
        settings_from(ctx), cutoff, [t.strip() for t in tables.split(",") if t.strip()], dry_run=dry_run
    )
    for table, count in counts.items():
        click.echo(f"{table}: {count} row(s) {'would be deleted' if dry_run else 'deleted'}")
