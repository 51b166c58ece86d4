"""The schema `db init` builds through the Alembic migrations is the one the models declare, on
SQLite and PostgreSQL: a model change without its migration (a column, an index) fails here."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from rabbitrun.models import migrate
from rabbitrun.models.base import Base
from rabbitrun.models.engine import make_engine
from tests.support.env import Env


def test_the_migrated_schema_is_the_declared_one(env: Env) -> None:
    engine = make_engine(env.settings().database, pooled=False)  # env ran `db init`
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
            indexes = {ix["name"]: ix["column_names"] for ix in inspect(conn).get_indexes("task_instance")}
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()
    # whether a run has unfinished task instances is one short range of this index (issue 6, W3)
    assert indexes["ix_task_instance_dag_run_state"] == ["dag_id", "run_id", "state"]
    assert "ix_task_instance_dag_run" not in indexes
