"""A migrated SQLite file and a real DagBag of three small DAGs in a tmp folder: the world the unit
tests of scheduling rules, sensors and outcome metrics decide in (the ``world`` fixture of
tests/unit/conftest.py builds it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rabbitrun.authoring import DagBag
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models import runs
from rabbitrun.models.tables import DagRun, TaskInstance
from rabbitrun.protocol import TaskEnvelope
from rabbitrun.scheduler import readiness
from rabbitrun.scheduler.runs import start_queued_runs
from rabbitrun.settings import Settings, load_settings

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)

DAGS = """
from datetime import timedelta
from rabbitrun.authoring import DAG, BashOperator

with DAG("chain", schedule=None) as chain:
    root = BashOperator(task_id="root", bash_command="true", retries=1, execution_timeout=timedelta(seconds=30))
    child = BashOperator(task_id="child", bash_command="true")
    cleanup = BashOperator(task_id="cleanup", bash_command="true", trigger_rule="all_done")
    root >> [child, cleanup]

with DAG("leaf_rule", schedule=None) as leaf_rule:
    first = BashOperator(task_id="first", bash_command="true")
    last = BashOperator(task_id="last", bash_command="true", trigger_rule="all_done")
    first >> last

with DAG("prio", schedule=None) as prio:
    BashOperator(task_id="low", bash_command="true", priority_weight=1)
    BashOperator(task_id="high", bash_command="true", priority_weight=10, queue="high_priority")
    BashOperator(task_id="mid", bash_command="true", priority_weight=5)
"""


@dataclass
class World:
    settings: Settings
    session: Session
    dagbag: DagBag
    tmp: Path

    def with_settings(self, **env: str) -> Settings:
        return settings_for(self.tmp, **env)


def settings_for(tmp: Path, **env: str) -> Settings:
    base = {
        "RABBITRUN__CORE__DAGS_FOLDER": str(tmp / "dags"),
        "RABBITRUN__CORE__LOAD_EXAMPLES": "false",
        "RABBITRUN__DATABASE__URL": f"sqlite:///{tmp / 'rabbitrun.db'}",
    }
    base.update({f"RABBITRUN__{k.upper()}": v for k, v in env.items()})
    return load_settings(home=tmp, env=base, read_file=False)


def start_run(w: World, dag_id: str, run_id: str = "r1") -> None:
    runs.create_run(w.session, dag_id, run_id, {}, NOW)
    start_queued_runs(w.session, w.dagbag, w.settings, NOW)


def ti_row(w: World, dag_id: str, task_id: str, run_id: str = "r1") -> TaskInstance:
    w.session.expire_all()
    ti = w.session.get(TaskInstance, (dag_id, task_id, run_id, -1))
    assert ti is not None
    return ti


def set_ti(w: World, dag_id: str, task_id: str, run_id: str = "r1", **values: Any) -> None:
    w.session.execute(
        update(TaskInstance)
        .where(TaskInstance.dag_id == dag_id, TaskInstance.task_id == task_id, TaskInstance.run_id == run_id)
        .values(**values)
    )
    w.session.commit()


def run_row(w: World, dag_id: str, run_id: str = "r1") -> DagRun:
    w.session.expire_all()
    return w.session.execute(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).scalar_one()


def attempt_key(dag_id: str, task_id: str, try_number: int = 1, run_id: str = "r1") -> TaskInstanceKey:
    return TaskInstanceKey(dag_id, task_id, run_id, -1, try_number)


def queued_root(w: World) -> TaskEnvelope:
    start_run(w, "chain")
    (envelope,) = readiness.schedule(w.session, w.dagbag, w.settings, NOW)
    return envelope
