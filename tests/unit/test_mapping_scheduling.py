"""The scheduler's side of mapping against a migrated SQLite file: a ready mapped placeholder expands
once (compare-and-set), and downstream trigger rules see the states of every mapped instance."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rabbitrun.authoring import DagBag
from rabbitrun.models import mapping, runs
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.migrate import upgrade
from rabbitrun.models.tables import TaskInstance
from rabbitrun.scheduler import readiness
from rabbitrun.scheduler.runs import start_queued_runs
from rabbitrun.settings import DatabaseSettings, Secret, Settings, load_settings

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)

DAGS = """
from rabbitrun import DAG, BashOperator
from rabbitrun.authoring import TriggerRule

with DAG("fan", schedule=None) as fan:
    mapped = BashOperator.partial(task_id="mapped").expand(bash_command=["a", "b", "c"])
    strict = BashOperator(task_id="strict", bash_command="true")
    done = BashOperator(task_id="done", bash_command="true", trigger_rule=TriggerRule.ALL_DONE)
    mapped >> [strict, done]
"""


@pytest.fixture()
def world(tmp_path: Path) -> Iterator[tuple[Session, DagBag, Settings]]:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "fan.py").write_text(DAGS)
    url = f"sqlite:///{tmp_path / 'rabbitrun.db'}"
    settings = load_settings(
        home=tmp_path,
        read_file=False,
        env={
            "RABBITRUN__CORE__DAGS_FOLDER": str(dags),
            "RABBITRUN__CORE__LOAD_EXAMPLES": "false",
            "RABBITRUN__DATABASE__URL": url,
        },
    )
    engine = make_engine(DatabaseSettings(url=Secret(url)))
    upgrade(engine)
    bag = DagBag(dags, include_examples=False)
    assert not bag.import_errors, bag.import_errors
    session = session_factory(engine)()
    runs.create_run(session, "fan", "r1", {}, NOW)
    start_queued_runs(session, bag, settings, NOW)
    try:
        yield session, bag, settings
    finally:
        session.close()
        engine.dispose()


def _states(session: Session) -> dict[tuple[str, int], str]:
    session.expire_all()
    return {(t.task_id, t.map_index): t.state for t in session.execute(select(TaskInstance)).scalars()}


def _finish_mapped(session: Session, states: list[str]) -> None:
    for i, state in enumerate(states):
        session.execute(
            update(TaskInstance)
            .where(TaskInstance.task_id == "mapped", TaskInstance.map_index == i)
            .values(state=state)
        )
    session.commit()


def test_ready_mapped_task_expands_into_queued_instances_and_downstream_waits(
    world: tuple[Session, DagBag, Settings],
) -> None:
    session, bag, settings = world
    envelopes = readiness.schedule(session, bag, settings, NOW)
    assert sorted((e.key.task_id, e.key.map_index, e.key.try_number) for e in envelopes) == [
        ("mapped", 0, 1),
        ("mapped", 1, 1),
        ("mapped", 2, 1),
    ]
    assert _states(session) == {
        ("mapped", 0): "queued",
        ("mapped", 1): "queued",
        ("mapped", 2): "queued",
        ("strict", -1): "none",
        ("done", -1): "none",
    }
    _finish_mapped(session, ["success", "success", "running"])
    assert readiness.schedule(session, bag, settings, NOW) == []  # one instance still running: all wait


def test_one_failed_instance_fails_all_success_downstream_while_all_done_runs(
    world: tuple[Session, DagBag, Settings],
) -> None:
    session, bag, settings = world
    readiness.schedule(session, bag, settings, NOW)
    _finish_mapped(session, ["success", "failed", "success"])
    envelopes = readiness.schedule(session, bag, settings, NOW)
    assert [(e.key.task_id, e.key.map_index) for e in envelopes] == [("done", -1)]
    assert _states(session)[("strict", -1)] == "upstream_failed"


def test_a_placeholder_expands_only_once(world: tuple[Session, DagBag, Settings]) -> None:
    session, _, _ = world
    placeholder = session.get(TaskInstance, ("fan", "mapped", "r1", -1))
    stale = TaskInstance(
        **{
            c: getattr(placeholder, c)
            for c in ("dag_id", "task_id", "run_id", "map_index", "state", "try_number", "max_tries", "queue")
        }
    )
    assert placeholder is not None
    assert [t.map_index for t in mapping.expand(session, placeholder, 3)] == [0, 1, 2]
    assert mapping.expand(session, stale, 5) == []  # a second scheduler with the same stale view loses
    session.commit()
    assert sorted(i for (t, i) in _states(session) if t == "mapped") == [0, 1, 2]
