"""Mark a task instance or a whole DAG run success or failed by hand (Airflow's "mark success/failed").

Task instance: its state is set, its failed / upstream_failed downstream task
instances are reset so they are evaluated again, and a finished run goes back
to running, so the scheduler carries on from the new state and settles the
run's final state itself. Run: success marks every task instance that is not
already success as success; failed marks running ones failed and unfinished
ones skipped (Airflow's rules), and the run takes that state at once.

An attempt still running when it is marked keeps running, but its final
compare-and-set (RUNNING -> outcome for its try) loses, so the mark stands.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from rabbitrun.authoring import DAG
from rabbitrun.errors import DagError, DagRunNotFound, TaskNotFound
from rabbitrun.models import transitions
from rabbitrun.models.tables import DagRun, TaskInstance
from rabbitrun.states import FINISHED_RUN_STATES, DagRunState, TaskState

MARKABLE = (TaskState.SUCCESS.value, TaskState.FAILED.value)


@dataclass(frozen=True, slots=True)
class Marked:
    previous: str
    reset_downstream: list[str]  # task ids of downstream instances set back to none
    run_reopened: bool


def _check(state: str) -> None:
    if state not in MARKABLE:
        raise DagError(f"cannot mark {state!r}: choose success or failed")


def _run(session: Session, dag_id: str, run_id: str) -> DagRun:
    run = session.execute(
        select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id).with_for_update()
    ).scalar_one_or_none()
    if run is None:
        raise DagRunNotFound(dag_id, run_id)
    return run


def set_task_state(
    session: Session, dag: DAG, run_id: str, task_id: str, state: str, now: datetime, map_index: int = -1
) -> Marked:
    """Set one task instance's state; the scheduler continues downstream from it. Commits."""
    _check(state)
    run = _run(session, dag.dag_id, run_id)
    downstream = _descendants(dag, task_id)
    ti = session.execute(
        select(TaskInstance)
        .where(
            TaskInstance.dag_id == dag.dag_id,
            TaskInstance.task_id == task_id,
            TaskInstance.run_id == run_id,
            TaskInstance.map_index == map_index,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()  # as locked: the CAS expects it
    if ti is None:
        raise TaskNotFound(dag.dag_id, task_id)
    previous = ti.state
    started = ti.start_date or now
    transitions.change(
        session,
        ti,
        transitions.MARK_TASK,
        TaskState(state),
        end_date=now,
        next_retry_at=None,
        reason=f"marked {state} by hand (was {previous})",
        start_date=started,
        duration=max(0.0, (now - started).total_seconds()),
    )
    reset = transitions.reset_downstream(session, dag.dag_id, run_id, downstream)
    reopened = run.state in {s.value for s in FINISHED_RUN_STATES}
    if reopened:  # the scheduler settles the run again from the new task states
        run.state, run.end_date = DagRunState.RUNNING.value, None
    session.commit()
    return Marked(previous, sorted(reset), reopened)


def set_run_state(session: Session, dag_id: str, run_id: str, state: str, now: datetime) -> Marked:
    """Set a run's state and its task instances' the way Airflow's mark run success/failed does. Commits."""
    _check(state)
    run = _run(session, dag_id, run_id)
    previous = run.state
    transitions.mark_run(session, dag_id, run_id, TaskState(state), now, f"run marked {state} by hand")
    run.state, run.end_date = state, now
    session.commit()
    return Marked(previous, [], False)


def _descendants(dag: DAG, task_id: str) -> list[str]:
    found: set[str] = set()
    todo = list(dag.get_task(task_id).downstream_task_ids)
    while todo:
        child = todo.pop()
        if child not in found:
            found.add(child)
            todo.extend(dag.get_task(child).downstream_task_ids)
    return sorted(found)
