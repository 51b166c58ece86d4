"""The SQLAlchemy-free trigger path (rabbitrun.models.lean) writes and reads exactly what the ORM
does, on the Alembic-migrated schema of SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from rabbitrun import client
from rabbitrun.errors import DagError, DatabaseUnavailable
from rabbitrun.models import runs
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.lean import LeanDB
from rabbitrun.models.tables import DagRun, TaskInstance
from rabbitrun.scheduler import readiness
from rabbitrun.scheduler.runs import start_queued_runs, sync_dags
from rabbitrun.settings import DatabaseSettings
from tests.support.env import Env

COLUMNS = (
    "state",
    "run_type",
    "logical_date",
    "conf",
    "queued_at",
    "data_interval_start",
    "data_interval_end",
    "start_date",
    "end_date",
)


def _register(settings: object) -> None:
    """What the scheduler's parse does: the DAGs of the folder are known to the DB."""
    sessions = session_factory(make_engine(settings.database, pooled=False))  # type: ignore[attr-defined]
    with sessions() as session:
        sync_dags(session, client.dagbag(settings), datetime.now(UTC))  # type: ignore[arg-type]


def _row(sessions: object, run_id: str) -> dict[str, object]:
    with sessions() as session:  # type: ignore[operator]
        run = session.execute(select(DagRun).where(DagRun.run_id == run_id)).scalar_one()
        return {c: getattr(run, c) for c in COLUMNS}


def test_a_lean_run_row_reads_back_through_the_orm_like_one_the_orm_wrote(env: Env) -> None:
    settings = env.settings()
    _register(settings)
    sessions = session_factory(make_engine(settings.database, pooled=False))
    now = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))  # not UTC on purpose
    lean = LeanDB.open(settings.database)
    assert lean is not None and lean.dag_registered("simple") and not lean.dag_registered("nope")
    lean.insert_queued_run("simple", "lean", {"x": [1, "é"]}, now)
    with sessions() as session:
        runs.create_run(session, "simple", "orm", {"x": [1, "é"]}, now)
    assert _row(sessions, "lean") == _row(sessions, "orm")
    assert _row(sessions, "lean")["queued_at"] == now and _row(sessions, "lean")["queued_at"].tzinfo == UTC
    with pytest.raises(DagError, match="DAG run 'lean' of 'simple' already exists"):
        lean.insert_queued_run("simple", "lean", {}, now)
    lean.close()


def test_lean_progress_equals_the_orm_progress_of_a_started_run(env: Env) -> None:
    settings = env.settings()
    _register(settings)
    run_id = client.trigger(settings, "chain3", conf={})
    bag = client.dagbag(settings)
    sessions = session_factory(make_engine(settings.database, pooled=False))
    with sessions() as session:
        start_queued_runs(session, bag, settings, datetime.now(UTC))
        readiness.schedule(session, bag, settings, datetime.now(UTC))
        states = dict(
            session.execute(select(TaskInstance.task_id, TaskInstance.state).where(TaskInstance.run_id == run_id)).all()
        )
    assert states == {"first": "queued", "second": "none", "third": "none"}
    lean = LeanDB.open(settings.database)
    assert lean is not None
    assert lean.run_progress("chain3", run_id) == ("running", {"queued": 1, "none": 2})
    assert lean.run_progress("chain3", "no-such-run") == (None, {})
    lean.close()
    progress = client.run_progress(settings, "chain3", run_id)
    assert (progress.state, progress.total, progress.queued) == ("running", 3, 1)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_urls_the_lean_path_does_not_handle_keep_the_orm_path(env: Env) -> None:
    for url in ("sqlite:///:memory:", "sqlite:///x.db?timeout=3", "postgresql+psycopg2://u@h/d", "mysql://u@h/d"):
        assert LeanDB.open(DatabaseSettings(url=url)) is None, url
    assert "sqlalchemy" in sys.modules  # (this process imported it; the CLI test below checks the command)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_dags_trigger_wait_runs_without_importing_sqlalchemy(env: Env) -> None:
    settings = env.settings()
    _register(settings)
    probe = (
        "import sys, runpy; sys.argv = ['rabbitrun', 'dags', 'trigger', 'simple', '--run-id', 'r1'];"
        "from rabbitrun.cli.main import main\ntry:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "print('SQLALCHEMY' if 'sqlalchemy' in sys.modules else 'LEAN', code)"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", probe], env=env.vars, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "LEAN 0", out.stdout + out.stderr
    assert client.run_progress(settings, "simple", "r1").state == "queued"
    again = subprocess.run(
        [sys.executable, "-m", "rabbitrun", "dags", "trigger", "simple", "--run-id", "r1"],
        env=env.vars,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 2 and "already exists" in again.stderr


def test_a_database_without_the_schema_is_named_with_the_remedy(env: Env, tmp_path: object) -> None:
    settings = env.settings()
    lean = LeanDB.open(settings.database)
    assert lean is not None
    if lean.dialect == "postgresql":  # a database that never had `db init`
        lean._execute("DROP SCHEMA public CASCADE", ())
        lean._execute("CREATE SCHEMA public", ())
    else:
        lean.close()
        lean = LeanDB.open(dataclasses.replace(settings.database, url=f"sqlite:///{env.home / 'empty.db'}"))
        assert lean is not None
    with pytest.raises(DatabaseUnavailable, match=r"dag_run.*run `rabbitrun db init`"):
        lean.insert_queued_run("simple", "r", {}, datetime.now(UTC))
    lean.close()
    down = dataclasses.replace(
        settings.database, url="postgresql+psycopg://postgres:pw@127.0.0.1:1/x", connect_timeout_s=2
    )
    with pytest.raises(DatabaseUnavailable, match=r"postgresql\+psycopg://postgres:\*\*\*@127.0.0.1:1/x"):
        LeanDB.open(down)
