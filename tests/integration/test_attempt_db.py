"""An attempt's hot path on a pooled DB-API connection (attempts.attempt_db), without a Session:
it must write and read exactly what the ORM does, and fail the way the ORM fails (SQLAlchemy's
DBAPIError, a dropped connection invalidated and replaced), on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError

from rabbitrun import client
from rabbitrun.models import attempt_sql, attempts, xcom
from rabbitrun.models.engine import as_unavailable, is_transient, make_engine, session_factory
from rabbitrun.models.tables import DagRun, TaskAttempt, TaskInstance, XComRow
from rabbitrun.scheduler import readiness
from rabbitrun.settings import DatabaseSettings, Secret
from rabbitrun.states import TaskState
from tests.support.env import Env
from tests.support.runs import start_run

# microseconds on purpose: SQLite keeps datetimes as text, and the claim compares start_date
LOGICAL = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def _queued(env: Env) -> tuple[object, object]:
    settings = env.settings()
    # as in a task process: no pre-ping, so a dead pooled connection shows at its first statement
    sessions = session_factory(make_engine(dataclasses.replace(settings.database, pool_pre_ping=False)))
    bag = client.dagbag(settings)
    start_run(sessions, settings, bag, "simple", "r1", LOGICAL, {"rows": 3})
    with sessions() as session:
        (envelope,) = readiness.schedule(session, bag, settings, LOGICAL)
    return sessions, envelope


def test_claim_and_finish_write_and_read_what_the_orm_does(env: Env) -> None:
    sessions, envelope = _queued(env)
    key = envelope.key  # type: ignore[attr-defined]
    started = datetime.now(UTC)
    with attempts.attempt_db(sessions) as db:  # type: ignore[arg-type]
        claim = attempts.claim(db, key, hostname="h1", pid=7, now=started, envelope_id="e1")
    assert claim.won and claim.run is not None
    with sessions() as session:  # type: ignore[operator]
        run = session.execute(select(DagRun).where(DagRun.run_id == "r1")).scalar_one()
        ti = session.get(TaskInstance, (key.dag_id, key.task_id, key.run_id, key.map_index))
        assert (ti.state, ti.start_date, ti.hostname, ti.pid, ti.envelope_id) == ("running", started, "h1", 7, "e1")
    assert claim.run.logical_date == run.logical_date == LOGICAL and claim.run.logical_date.tzinfo == UTC
    assert (claim.run.conf, claim.run.run_id) == (run.conf, "r1")

    with attempts.attempt_db(sessions) as db:  # type: ignore[arg-type]
        # the same claim again (its commit's answer lost) wins again: start_date compares equal
        assert attempts.claim(db, key, hostname="h1", pid=7, now=started, envelope_id="e1").won
        lost = attempts.claim(db, key, hostname="h2", pid=8, now=started + timedelta(seconds=1))
    assert (lost.won, lost.state, lost.try_number) == (False, "running", key.try_number)

    ended = started + timedelta(milliseconds=1500)
    with attempts.attempt_db(sessions) as db:  # type: ignore[arg-type]
        assert attempts.finish(db, key, attempts.Finish(TaskState.SUCCESS, ended), started_at=started, envelope_id="e1")
        assert not attempts.finish(
            db, key, attempts.Finish(TaskState.FAILED, ended), started_at=started, envelope_id="e1"
        )
    with sessions() as session:  # type: ignore[operator]
        ti = session.get(TaskInstance, (key.dag_id, key.task_id, key.run_id, key.map_index))
        assert (ti.state, ti.end_date, ti.duration) == ("success", ended, 1.5)
        row = session.execute(select(TaskAttempt).where(TaskAttempt.run_id == "r1")).scalar_one()
        assert (row.state, row.start_date, row.end_date, row.hostname, row.pid) == ("success", started, ended, "h1", 7)


def test_a_dropped_connection_is_invalidated_and_the_next_checkout_reconnects(env: Env) -> None:
    if not env.vars["RABBITRUN__DATABASE__URL"].startswith("postgresql"):
        pytest.skip("a server-side disconnect needs a server")
    sessions, envelope = _queued(env)
    key = envelope.key  # type: ignore[attr-defined]
    with attempts.attempt_db(sessions) as db:  # type: ignore[arg-type]
        backend = db.execute(
            "claim",
            {
                **attempt_sql.key_params(key.with_try(99)),
                "p_now": LOGICAL,
                "p_host": "",
                "p_pid": 0,
                "p_envelope": None,
                "p_queue": None,
            },
        ).connection.info.backend_pid
        db.rollback()
    with make_engine(env.settings().database, pooled=False).connect() as other:  # not the pooled one
        other.exec_driver_sql(f"SELECT pg_terminate_backend({backend})")
    now = datetime.now(UTC)
    with pytest.raises(DBAPIError) as raised, attempts.attempt_db(sessions) as db:  # type: ignore[arg-type]
        attempts.claim(db, key, hostname="h", pid=1, now=now)  # on the pooled, now dead, connection
    assert raised.value.connection_invalidated and is_transient(raised.value)
    with attempts.attempt_db(sessions) as db:  # type: ignore[arg-type]
        assert attempts.claim(db, key, hostname="h", pid=1, now=now).won


def test_an_unreachable_database_fails_as_the_orm_does() -> None:
    db = DatabaseSettings(url=Secret("postgresql+psycopg://postgres:secret@127.0.0.1:1/nowhere"), connect_timeout_s=1)
    sessions = session_factory(make_engine(db))
    with pytest.raises(OperationalError) as raised, attempts.attempt_db(sessions):
        pass
    unavailable = as_unavailable(raised.value, "postgresql+psycopg://postgres:***@127.0.0.1:1/nowhere")
    assert unavailable is not None and "127.0.0.1" in str(unavailable) and "secret" not in str(unavailable)


def _xcoms(sessions: object, key: object) -> list[str]:
    with sessions() as session:  # type: ignore[operator]
        return list(
            session.execute(
                select(XComRow.key).where(
                    XComRow.run_id == key.run_id,  # type: ignore[attr-defined]
                    XComRow.task_id == key.task_id,
                )
            ).scalars()
        )  # type: ignore[attr-defined]


def test_a_lost_claim_keeps_the_attempts_xcoms_and_a_won_claim_clears_the_old_ones(env: Env) -> None:
    """On PostgreSQL the claim, the run read and the XCom clear are one statement: the clear must
    happen only when the claim wins, or a duplicate delivery would wipe the running attempt's
    XComs."""
    sessions, envelope = _queued(env)
    key = envelope.key  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    with attempts.attempt_db(sessions) as db:  # type: ignore[arg-type]
        assert attempts.claim(db, key, hostname="h1", pid=7, now=now, envelope_id="e1").won
    with sessions() as session:  # type: ignore[operator]
        xcom.set_xcom(session, key, "pushed", 1, allow_pickle=False, max_bytes=0)
        session.commit()
    with attempts.attempt_db(sessions) as db:  # type: ignore[arg-type]
        assert not attempts.claim(db, key, hostname="h2", pid=8, now=now, envelope_id="e1").won  # a duplicate
    assert _xcoms(sessions, key) == ["pushed"]

    with attempts.attempt_db(sessions) as db:  # type: ignore[arg-type]
        assert attempts.finish(db, key, attempts.Finish(TaskState.UP_FOR_RETRY, now), started_at=now, envelope_id="e1")
    with sessions() as session:  # type: ignore[operator]
        ti = session.get(TaskInstance, (key.dag_id, key.task_id, key.run_id, key.map_index))
        ti.state, ti.try_number = "queued", key.try_number + 1
        session.commit()
    with attempts.attempt_db(sessions) as db:  # type: ignore[arg-type]
        assert attempts.claim(db, key.with_try(key.try_number + 1), hostname="h3", pid=9, now=now).won
    assert _xcoms(sessions, key) == []


def test_the_pooled_connection_goes_back_transactional_after_claim_and_finish(env: Env) -> None:
    """PostgreSQL claims and finishes in autocommit (one round trip each): the pooled connection
    must be back out of autocommit before anyone else uses it, whatever the outcome."""
    sessions, envelope = _queued(env)
    key = envelope.key  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    with attempts.attempt_db(sessions) as db:  # type: ignore[arg-type]
        assert attempts.claim(db, key, hostname="h", pid=1, now=now, envelope_id="e1").won
        assert not attempts.claim(db, key, hostname="h2", pid=2, now=now, envelope_id="e2").won
        assert attempts.finish(db, key, attempts.Finish(TaskState.SUCCESS, now), started_at=now, envelope_id="e1")
        assert not attempts.finish(db, key, attempts.Finish(TaskState.FAILED, now), started_at=now, envelope_id="e1")
    with sessions() as session:  # type: ignore[operator]  # the same pooled connection
        xcom.set_xcom(session, key, "rolled_back", 1, allow_pickle=False, max_bytes=0)
        session.flush()
        session.rollback()
    assert _xcoms(sessions, key) == []


def test_an_envelope_naming_another_queue_than_the_task_s_does_not_claim_it(env: Env) -> None:
    """Issue 17, finding 5: a forged envelope cannot run an isolated queue's task from another queue."""
    sessions, envelope = _queued(env)
    key, queue = envelope.key, envelope.queue  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    with attempts.attempt_db(sessions) as db:  # type: ignore[arg-type]
        forged = attempts.claim(db, key, hostname="h1", pid=7, now=now, envelope_id="forged", queue=queue + "_other")
        assert (forged.won, forged.state) == (False, "queued")
        assert attempts.claim(db, key, hostname="h1", pid=7, now=now, envelope_id="e1", queue=queue).won
