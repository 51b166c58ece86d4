"""Mapped task instances in the DB: expanding a placeholder, collapsing it again on clear.

A mapped task starts as one placeholder row (``map_index = -1``) like any
task. When it is ready, the scheduler reads how many instances it expands to
(:mod:`rabbitrun.scheduler.mapping`, which needs the authored task), and
:func:`expand` turns the placeholder into instance 0 by compare-and-set and
adds the others, so two schedulers evaluating the same run cannot both expand
it. Only rows and SQL here, no authoring type: models/ stays below authoring/.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from rabbitrun.models import transitions
from rabbitrun.models.tables import TaskInstance, XComRow
from rabbitrun.states import TaskState


def expand(session: Session, placeholder: TaskInstance, length: int) -> list[TaskInstance]:
    """Turn the ready placeholder into instances ``0..length-1`` (state none, flushed); returns them,
    or [] when another scheduler expanded it first.

    New instances start at the placeholder's try number, so after a clear their
    tries keep counting up instead of overwriting the logs of earlier tries.
    """
    won = session.execute(
        update(TaskInstance)
        .where(
            TaskInstance.dag_id == placeholder.dag_id,
            TaskInstance.task_id == placeholder.task_id,
            TaskInstance.run_id == placeholder.run_id,
            TaskInstance.map_index == -1,
            TaskInstance.state == TaskState.NONE.value,
        )
        .values(map_index=0)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not won:
        return []
    session.expunge(placeholder)  # its identity (map_index -1) no longer exists
    first = session.get(TaskInstance, (placeholder.dag_id, placeholder.task_id, placeholder.run_id, 0))
    assert first is not None
    rest = [
        TaskInstance(
            dag_id=first.dag_id,
            task_id=first.task_id,
            run_id=first.run_id,
            map_index=i,
            state=TaskState.NONE.value,
            try_number=first.try_number,
            max_tries=first.max_tries,
            queue=first.queue,
            priority_weight=first.priority_weight,
            operator=first.operator,
            pool=first.pool,
            pool_slots=first.pool_slots,
        )
        for i in range(1, length)
    ]
    session.add_all(rest)
    session.flush()  # the queueing UPDATE that follows must see them
    return [first, *rest]


def collapse(session: Session, dag_id: str, run_id: str, task_id: str, retries: int) -> bool:
    """Clear an expanded mapped task: its instances become one placeholder again (state none),
    re-expanded when ready; their XComs go. False (nothing changed) while an instance is active."""
    rows = session.execute(
        select(TaskInstance.map_index, TaskInstance.state, TaskInstance.try_number).where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id,
            TaskInstance.map_index >= 0,
        )
    ).all()
    if not rows or any(r.state in (TaskState.QUEUED.value, TaskState.RUNNING.value) for r in rows):
        return False
    top = max(r.try_number for r in rows)
    if not transitions.collapse(session, dag_id, run_id, task_id, try_number=top, max_tries=top + retries):
        return False  # instance 0 was queued meanwhile
    mine = (TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id)
    session.execute(
        delete(TaskInstance).where(*mine, TaskInstance.map_index >= 1).execution_options(synchronize_session=False)
    )
    session.execute(
        delete(XComRow)
        .where(XComRow.dag_id == dag_id, XComRow.run_id == run_id, XComRow.task_id == task_id, XComRow.map_index >= 0)
        .execution_options(synchronize_session=False)
    )
    return True


def mapped_indexes(session: Session, dag_id: str, run_id: str, task_ids: Sequence[str]) -> dict[str, list[int]]:
    """Map indexes of the expanded instances of these tasks, in order (tasks not expanded are absent)."""
    rows = session.execute(
        select(TaskInstance.task_id, TaskInstance.map_index)
        .where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id == run_id,
            TaskInstance.task_id.in_(list(task_ids)),
            TaskInstance.map_index >= 0,
        )
        .order_by(TaskInstance.map_index)
    ).all()
    out: dict[str, list[int]] = {}
    for task_id, map_index in rows:
        out.setdefault(task_id, []).append(map_index)
    return out
