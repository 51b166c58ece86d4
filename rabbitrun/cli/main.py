"""The `rabbitrun` command: the group, settings loading and the one error handler.

A RabbitrunError becomes one line on stderr and its exit code; commands stay
thin and import heavy modules inside their functions so `--help` is fast.
"""

from __future__ import annotations

import os
import sys

import click

from rabbitrun.errors import EXIT_INTERNAL, RabbitrunError
from rabbitrun.settings import load_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="rabbitrun")
def cli() -> None:
    """rabbitrun: Airflow-style DAGs, executed directly over RabbitMQ.

    Settings come from $RABBITRUN_HOME/rabbitrun.toml and RABBITRUN__SECTION__KEY
    environment variables. Exit codes: 0 ok, 1 failed run/task, 2 bad input,
    3 broker or database unavailable, 4 internal error.
    """


def _register() -> None:
    from rabbitrun.cli import (
        config,
        connections,
        dags,
        db,
        inspect,
        pools,
        processes,
        status,
        tasks,
        topology,
        variables,
    )

    for group in (
        config.config,
        db.db,
        dags.dags,
        tasks.tasks,
        topology.topology,
        variables.variables,
        connections.connections,
        inspect.inspect,
        inspect.control,
        status.broker,
        pools.pools,
    ):
        cli.add_command(group)
    for command in (
        processes.scheduler,
        processes.worker,
        processes.standalone,
        connections.rotate_fernet_key,
        status.status,
        status.health,
        status.events,
    ):
        cli.add_command(command)


_register()


#: Everything rabbitrun creates (SQLite DB and its -wal/-shm, task logs and their folders, the wake-up
#: socket, rabbitrun.toml) is for its owner alone: other local accounts read no secret from disk.
PRIVATE_UMASK = 0o077


def main() -> None:
    os.umask(PRIVATE_UMASK)  # before any file is opened; task processes inherit it
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except RabbitrunError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        known = _as_known_error(exc)
        if known is not None:
            click.echo(f"error: {known}", err=True)
            sys.exit(known.exit_code)
        click.echo(
            f"internal error: {type(exc).__name__}: {exc} (set RABBITRUN__LOGGING__LEVEL=DEBUG and report it)", err=True
        )
        if load_settings_safe_debug():
            raise
        sys.exit(EXIT_INTERNAL)
    else:  # with standalone_mode=False click returns ctx.exit()'s code instead of exiting
        sys.exit(code if isinstance(code, int) else 0)


def _as_known_error(exc: Exception) -> RabbitrunError | None:
    """A database driver error that escaped a command (the DB is down or went away) as the
    DatabaseUnavailable it means, naming the configured URL; one place for every command."""
    if "sqlalchemy" not in sys.modules:  # nothing talked to a database
        return None
    from rabbitrun.models.engine import as_unavailable
    from rabbitrun.settings import mask_url

    try:
        url = mask_url(str(load_settings().database.url))
    except RabbitrunError:
        url = "the configured URL"
    return as_unavailable(exc, url)


def load_settings_safe_debug() -> bool:
    try:
        return load_settings().logging.level.upper() == "DEBUG"
    except RabbitrunError:
        return False
