"""Clearing finished task instances so they run again with a new try; their runs go back to running.

Only rows here: which tasks to clear, and their retries, come from the authored DAG
(:func:`rabbitrun.client.runs.clear_tasks`).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from rabbitrun.models import mapping, transitions
from rabbitrun.models.tables import DagRun, TaskInstance
from rabbitrun.states import DagRunState, TaskState


def clear(
    session: Session, dag_id: str, retries: Mapping[str, int], *, run_id: str | None = None, dry_run: bool = False
) -> list[tuple[str, str]]:
    """Reset the finished instances of the tasks ``retries`` names (task id -> its retries), of one run
    or all; returns the (run_id, task_id) pairs cleared. Commits unless it is a dry run."""
    cleared: list[tuple[str, str]] = []
    expanded: set[tuple[str, str]] = set()
    changes = transitions.Changes()
    query = select(TaskInstance).where(
        TaskInstance.dag_id == dag_id,
        TaskInstance.task_id.in_(list(retries)),
        TaskInstance.state.notin_([TaskState.RUNNING.value, TaskState.QUEUED.value]),
    )
    if run_id:
        query = query.where(TaskInstance.run_id == run_id)
    for ti in session.execute(query).scalars():
        if ti.map_index >= 0:  # a mapped task's instances: collapsed below, re-expanded when ready
            expanded.add((ti.run_id, ti.task_id))
            continue
        cleared.append((ti.run_id, ti.task_id))
        if not dry_run:  # try_number is kept: the next queueing makes it try_number + 1
            changes.add(
                ti,
                transitions.CLEAR,
                TaskState.NONE,
                end_date=None,
                reason=None,
                next_retry_at=None,
                infra_retries=0,
                max_tries=ti.try_number + retries[ti.task_id],
            )
    changes.write(session)
    for run, task_id in sorted(expanded):
        if dry_run or mapping.collapse(session, dag_id, run, task_id, retries[task_id]):
            cleared.append((run, task_id))
    runs = {r for r, _ in cleared}
    if runs and not dry_run:
        for dag_run in session.execute(
            select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id.in_(runs))
        ).scalars():
            dag_run.state, dag_run.end_date = DagRunState.RUNNING.value, None
        session.commit()
    return cleared
