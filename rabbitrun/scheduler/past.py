"""depends_on_past / wait_for_downstream: which task instances wait for the previous DAG run.

A task with ``depends_on_past`` runs only once the same task of the previous run of its DAG (by
logical date) succeeded or was skipped; with ``wait_for_downstream``, that task's direct downstream
tasks must have too. A first run, or a previous run without that task, does not wait (Airflow's
rule). One query per scheduler pass answers it for every run evaluated, and none is made when no
DAG of the pass has such a task.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import and_, select, tuple_
from sqlalchemy.orm import Session, aliased

from rabbitrun.authoring import DAG, BaseOperator
from rabbitrun.models.tables import DagRun, TaskInstance
from rabbitrun.states import TaskState

__all__ = ["blocked_by_past"]

_PASSED = (TaskState.SUCCESS.value, TaskState.SKIPPED.value)


def _watched(task: BaseOperator) -> set[str]:
    """The task ids of the previous run a task waits for."""
    return {task.task_id, *task.downstream_task_ids} if task.wait_for_downstream else {task.task_id}


def blocked_by_past(session: Session, runs: Iterable[tuple[DagRun, DAG]]) -> dict[tuple[str, str], set[str]]:
    """Per (dag_id, run_id), the task ids that must wait: depends_on_past tasks whose previous
    instance (or one of its downstream's, with wait_for_downstream) has not succeeded or skipped."""
    waiting = {
        (run.dag_id, run.run_id): (dag, [t for t in dag.tasks if t.depends_on_past])
        for run, dag in runs
        if any(t.depends_on_past for t in dag.tasks)
    }
    if not waiting:
        return {}
    task_ids = sorted({w for _, tasks in waiting.values() for t in tasks for w in _watched(t)})
    current = aliased(DagRun)
    previous_run_id = (
        select(DagRun.run_id)
        .where(DagRun.dag_id == current.dag_id, DagRun.logical_date < current.logical_date)
        .order_by(DagRun.logical_date.desc())
        .limit(1)
        .correlate(current)
        .scalar_subquery()
    )
    rows = session.execute(
        select(current.dag_id, current.run_id, TaskInstance.task_id)
        .join(TaskInstance, and_(TaskInstance.dag_id == current.dag_id, TaskInstance.run_id == previous_run_id))
        .where(
            tuple_(current.dag_id, current.run_id).in_(list(waiting)),
            TaskInstance.task_id.in_(task_ids),
            TaskInstance.state.notin_(_PASSED),
        )
        .distinct()
    ).all()
    unfinished: dict[tuple[str, str], set[str]] = defaultdict(set)
    for dag_id, run_id, task_id in rows:
        unfinished[(dag_id, run_id)].add(task_id)
    return {
        run: {t.task_id for t in tasks if _watched(t) & unfinished[run]}
        for run, (_, tasks) in waiting.items()
        if run in unfinished
    }
