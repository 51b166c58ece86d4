"""Create, check and reset the metadata schema through Alembic migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from rabbitrun.errors import DatabaseNotInitialized
from rabbitrun.models import tables  # noqa: F401 - registers every table on Base.metadata
from rabbitrun.models.base import Base
from rabbitrun.models.engine import db_errors, masked

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(connection: object | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "no migrations shipped"
    return head


def current_revision(engine: Engine) -> str | None:
    with db_errors(engine), engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> str:
    """Bring the schema to the newest revision (what `db init` does); idempotent."""
    with db_errors(engine), engine.begin() as conn:
        command.upgrade(_config(conn), "head")
    return head_revision()


def check(engine: Engine) -> str:
    """Raise unless the DB is reachable and at the head revision; returns the revision."""
    current = current_revision(engine)
    head = head_revision()
    if current is None:
        raise DatabaseNotInitialized(masked(engine), "no schema")
    if current != head:
        raise DatabaseNotInitialized(masked(engine), f"schema at {current}, code expects {head}")
    return current


def reset(engine: Engine) -> str:
    """Drop every rabbitrun table and migrate from scratch."""
    with db_errors(engine), engine.begin() as conn:
        Base.metadata.drop_all(conn)
        if inspect(conn).has_table("alembic_version"):
            conn.exec_driver_sql("DROP TABLE alembic_version")
    return upgrade(engine)


def autogenerate(engine: Engine, message: str) -> None:
    """Developer helper: write a new revision from model changes."""
    with engine.begin() as conn:
        command.revision(_config(conn), message=message, autogenerate=True)
