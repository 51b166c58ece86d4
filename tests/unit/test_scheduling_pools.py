"""Admission as the scheduler applies it against a migrated SQLite file: pools, unknown pools,
max_active_tasks, and the one-scheduler lock of SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rabbitrun.authoring import DagBag
from rabbitrun.errors import SchedulerAlreadyRunning
from rabbitrun.models import pools, runs, scheduler_lock
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.migrate import upgrade
from rabbitrun.models.tables import DagRun, TaskInstance
from rabbitrun.scheduler import readiness
from rabbitrun.scheduler.runs import start_queued_runs
from rabbitrun.settings import Settings, load_settings

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)

DAGS = """
from rabbitrun.authoring import DAG, BashOperator

with DAG("pooled", schedule=None) as pooled:
    for i, weight in enumerate([1, 5, 3, 9]):
        BashOperator(task_id=f"t{i}", bash_command="true", pool="narrow", priority_weight=weight)
    BashOperator(task_id="big", bash_command="true", pool="narrow", pool_slots=2, priority_weight=0)

with DAG("lost", schedule=None) as lost:
    orphan = BashOperator(task_id="orphan", bash_command="true", pool="no_such_pool")
    orphan >> BashOperator(task_id="after", bash_command="true")

with DAG("capped", schedule=None, max_active_tasks=2) as capped:
    for i in range(4):
        BashOperator(task_id=f"t{i}", bash_command="true")
"""


@pytest.fixture()
def world(tmp_path: Path) -> Iterator[tuple[Settings, Session, DagBag]]:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "pool_dags.py").write_text(DAGS)
    settings = load_settings(
        home=tmp_path,
        read_file=False,
        env={
            "RABBITRUN__CORE__DAGS_FOLDER": str(dags),
            "RABBITRUN__CORE__LOAD_EXAMPLES": "false",
            "RABBITRUN__DATABASE__URL": f"sqlite:///{tmp_path / 'rabbitrun.db'}",
        },
    )
    engine = make_engine(settings.database)
    upgrade(engine)
    dagbag = DagBag(dags, include_examples=False)
    assert not dagbag.import_errors, dagbag.import_errors
    with session_factory(engine)() as session:
        yield settings, session, dagbag
    engine.dispose()


def _start(session: Session, dagbag: DagBag, settings: Settings, dag_id: str, run_id: str = "r1") -> None:
    runs.create_run(session, dag_id, run_id, {}, NOW)
    start_queued_runs(session, dagbag, settings, NOW)


def _tis(session: Session, dag_id: str) -> dict[str, TaskInstance]:
    session.expire_all()
    return {
        ti.task_id: ti for ti in session.execute(select(TaskInstance).where(TaskInstance.dag_id == dag_id)).scalars()
    }


def test_task_instances_carry_their_tasks_pool_and_pool_slots(world: tuple[Settings, Session, DagBag]) -> None:
    settings, session, dagbag = world
    _start(session, dagbag, settings, "pooled")
    tis = _tis(session, "pooled")
    assert {(t, ti.pool, ti.pool_slots) for t, ti in tis.items() if t in ("t0", "big")} == {
        ("t0", "narrow", 1),
        ("big", "narrow", 2),
    }
    _start(session, dagbag, settings, "capped")
    assert {ti.pool for ti in _tis(session, "capped").values()} == {"default_pool"}


def test_pool_queues_only_its_slots_by_priority_and_the_rest_wait_saying_why(
    world: tuple[Settings, Session, DagBag],
) -> None:
    settings, session, dagbag = world
    pools.set_pool(session, "narrow", 2)
    _start(session, dagbag, settings, "pooled")
    notes = readiness.PassNotes()
    envelopes = readiness.schedule(session, dagbag, settings, NOW, notes=notes)
    assert [e.key.task_id for e in envelopes] == ["t3", "t1"]  # weights 9 and 5
    assert notes.waiting == {("pooled", "r1")}
    tis = _tis(session, "pooled")
    assert tis["t0"].state == "none" and tis["t0"].reason == "waiting: no free slot in pool 'narrow' (2 slots)"
    assert readiness.schedule(session, dagbag, settings, NOW) == []
    session.execute(update(TaskInstance).where(TaskInstance.task_id == "t3").values(state="success"))
    session.commit()
    assert [e.key.task_id for e in readiness.schedule(session, dagbag, settings, NOW)] == ["t2"]  # weight 3


def test_task_naming_an_unknown_pool_fails_with_the_reason_and_its_downstream_is_upstream_failed(
    world: tuple[Settings, Session, DagBag],
) -> None:
    settings, session, dagbag = world
    _start(session, dagbag, settings, "lost")
    notes = readiness.PassNotes()
    assert readiness.schedule(session, dagbag, settings, NOW, notes=notes) == []
    assert notes.again == {("lost", "r1")}  # the scheduler settles its downstream at once
    orphan = _tis(session, "lost")["orphan"]
    assert orphan.state == "failed" and "pool 'no_such_pool' does not exist" in (orphan.reason or "")
    readiness.schedule(session, dagbag, settings, NOW)
    readiness.schedule(session, dagbag, settings, NOW)
    assert _tis(session, "lost")["after"].state == "upstream_failed"
    run = session.execute(select(DagRun).where(DagRun.dag_id == "lost")).scalar_one()
    assert run.state == "failed"


def test_max_active_tasks_counts_task_instances_of_all_runs_of_the_dag(world: tuple[Settings, Session, DagBag]) -> None:
    settings, session, dagbag = world
    _start(session, dagbag, settings, "capped", "r1")
    _start(session, dagbag, settings, "capped", "r2")
    assert len(readiness.schedule(session, dagbag, settings, NOW)) == 2
    assert readiness.schedule(session, dagbag, settings, NOW) == []
    reasons = {ti.reason for ti in _tis(session, "capped").values() if ti.state == "none"}
    assert reasons == {"waiting: max_active_tasks (2) of DAG capped reached"}


def test_resizing_a_pool_lets_its_waiting_tasks_go(world: tuple[Settings, Session, DagBag]) -> None:
    settings, session, dagbag = world
    pools.set_pool(session, "narrow", 0)
    _start(session, dagbag, settings, "pooled")
    assert readiness.schedule(session, dagbag, settings, NOW) == []
    pools.set_pool(session, "narrow", 10)
    assert len(readiness.schedule(session, dagbag, settings, NOW)) == 5
    assert {p.pool: p.occupied for p in pools.list_pools(session)}["narrow"] == 6  # "big" holds 2


def test_second_scheduler_lock_on_one_sqlite_database_is_refused_until_the_first_is_released(tmp_path: Path) -> None:
    settings = load_settings(
        home=tmp_path, read_file=False, env={"RABBITRUN__DATABASE__URL": f"sqlite:///{tmp_path / 'r.db'}"}
    )
    first = scheduler_lock.acquire(settings.database)
    assert first is not None
    with pytest.raises(SchedulerAlreadyRunning, match="SQLite supports one scheduler; use PostgreSQL"):
        scheduler_lock.acquire(settings.database)
    first.close()
    again = scheduler_lock.acquire(settings.database)
    assert again is not None
    again.close()
