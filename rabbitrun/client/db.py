"""The metadata DB as the operator manages it: sessions, schema init/check/reset, cleaning old rows,
the fernet key and the variables/connections access that uses it."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from rabbitrun.settings import Settings


def sessions_for(settings: Settings) -> Any:
    """A session factory on an unpooled engine (a CLI command is short-lived)."""
    from rabbitrun.models.engine import make_engine, session_factory

    return session_factory(make_engine(settings.database, pooled=False))


def db_init(settings: Settings) -> str:
    from rabbitrun.models import migrate
    from rabbitrun.models.engine import make_engine

    Path(settings.core.dags_folder).mkdir(parents=True, exist_ok=True)
    revision = migrate.upgrade(make_engine(settings.database, pooled=False))
    make_sqlite_private(str(settings.database.url))
    return revision


def make_sqlite_private(url: str) -> None:
    """A SQLite DB made before the private umask (or copied in) may be world-readable: it holds
    every encrypted secret and every XCom, so it and its journal files become 0600."""
    from rabbitrun.models.urls import sqlite_file

    name = sqlite_file(url)
    if name is None:
        return
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = Path(name + suffix)
        if path.exists():
            path.chmod(0o600)


def db_check(settings: Settings) -> str:
    from rabbitrun.models import migrate
    from rabbitrun.models.engine import make_engine

    return migrate.check(make_engine(settings.database, pooled=False))


def db_reset(settings: Settings) -> str:
    from rabbitrun.models import migrate
    from rabbitrun.models.engine import make_engine

    return migrate.reset(make_engine(settings.database, pooled=False))


def clean_db(settings: Settings, before: datetime, tables: list[str], *, dry_run: bool) -> dict[str, int]:
    """Delete rows older than ``before`` from the named tables (xcom, task_attempt, dag_run)."""
    from rabbitrun.errors import ConfigError
    from rabbitrun.models import cleanup, xcom
    from rabbitrun.models.xcom_backends import XCOM_FILES_FOLDER

    cleaners = {
        "xcom": lambda s: xcom.clean(s, before, dry_run=dry_run, files_folder=settings.home / XCOM_FILES_FOLDER),
        "task_attempt": lambda s: cleanup.clean_task_attempts(s, before, dry_run=dry_run),
        "dag_run": lambda s: cleanup.clean_dag_runs(s, before, dry_run=dry_run),
    }
    unknown = [t for t in tables if t not in cleaners]
    if unknown:
        raise ConfigError(f"cannot clean table(s) {unknown}; choose from {sorted(cleaners)}", key="--tables")
    with sessions_for(settings)() as session:
        return {t: cleaners[t](session) for t in tables}


# --- variables, connections, keys ---------------------------------------------------


def data_access(settings: Settings) -> Any:
    from rabbitrun.data import access as runtime

    return runtime.build(settings, sessions_for(settings))


def ensure_fernet_key(settings: Settings) -> str | None:
    """On a home without a key, generate one into rabbitrun.toml (mode 0600); returns the file written."""
    from rabbitrun.secrets import generate_key

    if settings.core.fernet_key:
        return None
    return _add_generated_setting(settings, "core", "fernet_key", generate_key())


def ensure_control_key(settings: Settings) -> str | None:
    """On a home without ``[control] secret_key``, generate one into rabbitrun.toml (mode 0600), as
    for the Fernet key: operators and workers sign and check control requests with it."""
    import secrets

    if settings.control.secret_key:
        return None
    return _add_generated_setting(settings, "control", "secret_key", secrets.token_urlsafe(32))


def _add_generated_setting(settings: Settings, section: str, key: str, value: str) -> str | None:
    path = settings.config_file
    text = path.read_text() if path.exists() else ""
    if f"\n{key} =" in f"\n{text}" and f"[{section}]" in text:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    if f"[{section}]" in text:
        text = text.replace(f"[{section}]", f'[{section}]\n{key} = "{value}"', 1)
    else:
        text += f'\n[{section}]\n{key} = "{value}"\n'
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others, not even briefly
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    path.chmod(0o600)  # an existing file keeps its mode on open: tighten it too
    return str(path)


def rotate_fernet_key(settings: Settings) -> tuple[int, int]:
    access = data_access(settings)
    return access.variables.rotate(), access.connections.rotate()
