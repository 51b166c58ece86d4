"""Mapped task instances in the DB: how many a mapped task expands to, expanding, collapsing on clear.

A mapped task starts as one placeholder row (``map_index = -1``) like any
task. When it is ready, :func:`map_length` reads how many elements its
expanded arguments have: a literal list's length, the number of instances of
a mapped upstream, or the length of the upstream's XCom list. No column
stores the length, so no migration is needed and a cleared upstream that
returns another list simply gives another length. :func:`expand` turns the
placeholder into instance 0 by compare-and-set and adds the others, so two
schedulers evaluating the same run cannot both expand it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from rabbitrun.authoring import MappedOperator, XComArg
from rabbitrun.errors import MappingError
from rabbitrun.models import xcom
from rabbitrun.models.tables import TaskInstance, XComRow
from rabbitrun.states import TaskState

_MISSING: Any = object()


def map_length(session: Session, task: MappedOperator, dag_id: str, run_id: str, *, max_length: int,
               backend: xcom.XComBackend) -> int:
    """Number of instances ``task`` expands to in this run (the product over its mapped arguments).

    Raises :class:`MappingError` with the reason the task fails for: an
    upstream value that is not a list, or more instances than ``max_length``.
    """
    lengths = [_length(session, task, name, value, dag_id, run_id, backend)
               for name, value in task.expand_input.items()]
    total = math.prod(lengths)
    if total > max_length:
        raise MappingError(f"mapped task {task.task_id!r} would expand to {total} instances, over the "
                           f"[core] max_map_length limit of {max_length}")
    return total


def _length(session: Session, task: MappedOperator, name: str, value: Any, dag_id: str, run_id: str,
            backend: xcom.XComBackend) -> int:
    if not isinstance(value, XComArg):
        return len(value)
    upstream = value.operator
    if isinstance(upstream, MappedOperator):  # its output is the list of its instances' results
        return len(mapped_indexes(session, dag_id, run_id, [upstream.task_id]).get(upstream.task_id, []))
    found = xcom.get_xcoms(session, dag_id, run_id, [upstream.task_id], value.key, allow_pickle=False,
                           backend=backend).get((upstream.task_id, -1), _MISSING)
    where = f"mapped task {task.task_id!r} cannot expand {name!r} over {upstream.task_id}'s XCom {value.key!r}"
    if found is _MISSING:
        raise MappingError(f"{where}: there is none (did it return None?); expand needs a list")
    if not isinstance(found, list | tuple):
        raise MappingError(f"{where}: it is a {type(found).__name__}, not a list")
    return len(found)


def expand(session: Session, placeholder: TaskInstance, length: int) -> list[TaskInstance]:
    """Turn the ready placeholder into instances ``0..length-1`` (state none, flushed); returns them,
    or [] when another scheduler expanded it first.

    New instances start at the placeholder's try number, so after a clear their
    tries keep counting up instead of overwriting the logs of earlier tries.
    """
    won = session.execute(
        update(TaskInstance)
        .where(TaskInstance.dag_id == placeholder.dag_id, TaskInstance.task_id == placeholder.task_id,
               TaskInstance.run_id == placeholder.run_id, TaskInstance.map_index == -1,
               TaskInstance.state == TaskState.NONE.value)
        .values(map_index=0)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not won:
        return []
    session.expunge(placeholder)  # its identity (map_index -1) no longer exists
    first = session.get(TaskInstance, (placeholder.dag_id, placeholder.task_id, placeholder.run_id, 0))
    assert first is not None
    rest = [TaskInstance(dag_id=first.dag_id, task_id=first.task_id, run_id=first.run_id, map_index=i,
                         state=TaskState.NONE.value, try_number=first.try_number, max_tries=first.max_tries,
                         queue=first.queue, priority_weight=first.priority_weight, operator=first.operator,
                         pool=first.pool, pool_slots=first.pool_slots)
            for i in range(1, length)]
    session.add_all(rest)
    session.flush()  # the queueing UPDATE that follows must see them
    return [first, *rest]


def collapse(session: Session, dag_id: str, run_id: str, task_id: str, retries: int) -> bool:
    """Clear an expanded mapped task: its instances become one placeholder again (state none),
    re-expanded when ready; their XComs go. False (nothing changed) while an instance is active."""
    rows = session.execute(select(TaskInstance.map_index, TaskInstance.state, TaskInstance.try_number).where(
        TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id,
        TaskInstance.map_index >= 0)).all()
    if not rows or any(r.state in (TaskState.QUEUED.value, TaskState.RUNNING.value) for r in rows):
        return False
    top = max(r.try_number for r in rows)
    mine = (TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id)
    session.execute(delete(TaskInstance).where(*mine, TaskInstance.map_index >= 1)
                    .execution_options(synchronize_session=False))
    session.execute(update(TaskInstance).where(*mine, TaskInstance.map_index == 0)
                    .values(map_index=-1, state=TaskState.NONE.value, try_number=top, max_tries=top + retries,
                            end_date=None, reason=None, next_retry_at=None)
                    .execution_options(synchronize_session=False))
    session.execute(delete(XComRow).where(XComRow.dag_id == dag_id, XComRow.run_id == run_id,
                                          XComRow.task_id == task_id, XComRow.map_index >= 0)
                    .execution_options(synchronize_session=False))
    return True


def mapped_indexes(session: Session, dag_id: str, run_id: str, task_ids: Sequence[str]) -> dict[str, list[int]]:
    """Map indexes of the expanded instances of these tasks, in order (tasks not expanded are absent)."""
    rows = session.execute(select(TaskInstance.task_id, TaskInstance.map_index).where(
        TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id.in_(list(task_ids)),
        TaskInstance.map_index >= 0).order_by(TaskInstance.map_index)).all()
    out: dict[str, list[int]] = {}
    for task_id, map_index in rows:
        out.setdefault(task_id, []).append(map_index)
    return out
