"""A spare task process warms its new DB connection with the attempt's statements: nothing of
that may stay in the database, and a real claim on the same connection still works."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from rabbitrun import client
from rabbitrun.models import attempts
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.tables import DagRun, TaskAttempt, TaskInstance, XComRow
from rabbitrun.scheduler import readiness
from tests.support.env import Env
from tests.support.runs import start_run


def _counts(sessions: object) -> tuple[int, ...]:
    with sessions() as session:  # type: ignore[operator]
        return tuple(
            session.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (DagRun, TaskInstance, TaskAttempt, XComRow)
        )


def test_warming_leaves_no_rows_and_the_connection_then_claims(env: Env) -> None:
    settings = env.settings()
    sessions = session_factory(make_engine(settings.database))
    bag = client.dagbag(settings)
    now = datetime.now(UTC)
    start_run(sessions, settings, bag, "simple", "r1", now)
    with sessions() as session:
        (envelope,) = readiness.schedule(session, bag, settings, now)
    before = _counts(sessions)
    with sessions() as session:
        attempts.warm_connection(session, now, "1")
        attempts.warm_connection(session, now, "1")  # twice on one connection: nothing left over
        claim = attempts.claim(session, envelope.key, hostname="h", pid=1, now=now, envelope_id=envelope.id)
    assert claim.won
    assert _counts(sessions) == before
    with sessions() as session:
        assert session.get(TaskInstance, ("simple", envelope.key.task_id, "r1", -1)).state == "running"
        assert (
            session.execute(
                select(func.count()).select_from(TaskAttempt).where(TaskAttempt.run_id.like("~warmup~%"))
            ).scalar_one()
            == 0
        )
