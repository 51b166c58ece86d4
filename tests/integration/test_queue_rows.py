"""Queueing ready task instances (queueing.queue): a compare-and-set on the state and try each
row was read with, on SQLite (a row-value IN list) and PostgreSQL (six arrays joined on the key),
and a bulk load of task instances analyzed on PostgreSQL before it is queued."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from rabbitrun import client
from rabbitrun.authoring import DagBag
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.tables import TaskInstance
from rabbitrun.scheduler import queueing, readiness, runs
from tests.support.env import Env
from tests.support.runs import start_run


def test_rows_changed_since_they_were_read_are_not_queued_again(env: Env) -> None:
    settings = env.settings()
    sessions = session_factory(make_engine(settings.database))
    bag = client.dagbag(settings)
    now = datetime.now(UTC)
    start_run(sessions, settings, bag, "simple", "r1", now)
    with sessions() as stale:  # a second scheduler's read, before the first one queues
        read = stale.execute(select(TaskInstance).where(TaskInstance.run_id == "r1")).scalars().all()
        stale.expunge_all()
    with sessions() as session:
        first = readiness.schedule(session, bag, settings, now)
    assert first and {e.key.try_number for e in first} == {1}
    dag = bag.get_dag("simple")
    ready = [ti for ti in read if ti.task_id in {e.key.task_id for e in first}]
    with sessions() as session:
        assert queueing.queue(session, [(ti, dag) for ti in ready], bag, settings, now) == []
        session.commit()
        rows = session.execute(
            select(TaskInstance.task_id, TaskInstance.try_number, TaskInstance.envelope_id).where(
                TaskInstance.run_id == "r1", TaskInstance.state == "queued"
            )
        ).all()
    assert sorted((t, n, e) for t, n, e in rows) == sorted((e.key.task_id, 1, e.id) for e in first)


def test_a_bulk_load_of_task_instances_is_analyzed_then_queued(env: Env, tmp_path: Path) -> None:
    if not env.vars["RABBITRUN__DATABASE__URL"].startswith("postgresql"):
        pytest.skip("planner statistics are PostgreSQL's")
    size = runs.ANALYZE_AFTER_ROWS
    dags = tmp_path / "bulk_dags"
    dags.mkdir()
    (dags / "bulk.py").write_text(
        "from rabbitrun import DAG, BashOperator\n"
        "with DAG('bulk', max_active_tasks=100000) as dag:\n"
        f"    for i in range({size}):\n"
        "        BashOperator(task_id=f't{i}', bash_command='true')\n"
    )
    settings = env.settings()
    sessions = session_factory(make_engine(settings.database))
    bag = DagBag(dags, include_examples=False)
    now = datetime.now(UTC)
    analyzed = text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'task_instance'")
    with sessions() as session:
        before = session.execute(analyzed).scalar()
    start_run(sessions, settings, bag, "bulk", "r1", now)
    with sessions() as session:
        assert session.execute(analyzed).scalar() != before  # the statistics the queueing UPDATE is planned with
        envelopes = readiness.schedule(session, bag, settings, now)
        queued = session.execute(
            select(func.count(), func.count(func.distinct(TaskInstance.envelope_id))).where(
                TaskInstance.state == "queued"
            )
        ).one()
    assert len(envelopes) == size and tuple(queued) == (size, size)
