"""DAG run rows: create a QUEUED run, read a run's state and its task instances, count task states.

The scheduler, ``dags trigger``/``backfill`` and ``dags test`` create runs here, so a
manual, scheduled and backfill run are written the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rabbitrun.errors import DagRunNotFound
from rabbitrun.keys import validate_run_id
from rabbitrun.models.tables import DagRun, TaskInstance
from rabbitrun.models.views import TaskStateRow
from rabbitrun.states import DagRunState


def create_run(
    session: Session,
    dag_id: str,
    run_id: str,
    conf: dict[str, object],
    now: datetime,
    run_type: str = "manual",
    interval: Any = None,
    commit: bool = True,
) -> DagRun:
    """A QUEUED run; scheduled and backfill runs carry their data interval (logical_date = its start).
    A run_id outside Airflow's character rules is refused (:class:`~rabbitrun.errors.InvalidRunId`)."""
    validate_run_id(run_id)
    start, end = (interval.start, interval.end) if interval is not None else (now, now)
    run = DagRun(
        dag_id=dag_id,
        run_id=run_id,
        state=DagRunState.QUEUED.value,
        run_type=run_type,
        logical_date=start,
        conf=json.dumps(conf),
        queued_at=now,
        data_interval_start=start,
        data_interval_end=end,
    )
    session.add(run)
    if commit:
        session.commit()
    return run


def state_and_counts(session: Session, dag_id: str, run_id: str) -> tuple[str | None, dict[str, int]]:
    """The run's state (None: no such run) and how many of its task instances are in each state."""
    state = session.execute(
        select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
    ).scalar_one_or_none()
    if state is None:
        return None, {}
    counts = dict(
        session.execute(
            select(TaskInstance.state, func.count())
            .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            .group_by(TaskInstance.state)
        )
        .tuples()
        .all()
    )
    return state, counts


def task_state_rows(session: Session, dag_id: str, run_id: str) -> list[TaskStateRow]:
    """The run's task instances, started ones first in start order; DagRunNotFound if no such run."""
    if session.execute(select(DagRun.id).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).first() is None:
        raise DagRunNotFound(dag_id, run_id)
    rows = (
        session.execute(
            select(TaskInstance)
            .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            .order_by(TaskInstance.start_date.is_(None), TaskInstance.start_date, TaskInstance.task_id)
        )
        .scalars()
        .all()
    )
    return [
        TaskStateRow(
            t.task_id, t.map_index, t.state, t.try_number, t.start_date, t.end_date, t.duration, t.hostname, t.reason
        )
        for t in rows
    ]


def run_ids(session: Session, dag_id: str) -> set[str]:
    """The run ids the DAG has."""
    return set(session.execute(select(DagRun.run_id).where(DagRun.dag_id == dag_id)).scalars())


def task_state_counts(session: Session) -> dict[str, int]:
    """How many task instances, over all runs, are in each state."""
    rows = session.execute(select(TaskInstance.state, func.count()).group_by(TaskInstance.state)).all()
    return {state: count for state, count in rows}


def external_states(session: Session, dag_id: str, task_id: str | None, logical_dates: Sequence[datetime]) -> list[str]:
    """States of ``dag_id``'s runs on those logical dates, or of their ``task_id`` instances
    when a task is named (what ExternalTaskSensor waits on); one entry per row found."""
    dates = list(logical_dates)
    if task_id is None:
        query = select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.logical_date.in_(dates))
    else:
        runs = select(DagRun.run_id).where(DagRun.dag_id == dag_id, DagRun.logical_date.in_(dates))
        query = select(TaskInstance.state).where(
            TaskInstance.dag_id == dag_id, TaskInstance.task_id == task_id, TaskInstance.run_id.in_(runs)
        )
    return [str(s) for s in session.execute(query).scalars()]
