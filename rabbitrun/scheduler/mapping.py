"""How many instances a mapped task expands to in a run: here, as it reads the authored MappedOperator.

A mapped task starts as one placeholder row (``map_index = -1``) like any
task. When it is ready, :func:`map_length` reads how many elements its
expanded arguments have: a literal list's length, the number of instances of
a mapped upstream, or the length of the upstream's XCom list. No column
stores the length, so no migration is needed and a cleared upstream that
returns another list simply gives another length.
:func:`rabbitrun.models.mapping.expand` then turns the placeholder into its
instances; models/ may not import authoring/, so this half lives here.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy.orm import Session

from rabbitrun.authoring import MappedOperator, XComArg
from rabbitrun.errors import MappingError
from rabbitrun.models import xcom
from rabbitrun.models.mapping import mapped_indexes

_MISSING: Any = object()


def map_length(
    session: Session, task: MappedOperator, dag_id: str, run_id: str, *, max_length: int, backend: xcom.XComBackend
) -> int:
    """Number of instances ``task`` expands to in this run (the product over its mapped arguments).

    Raises :class:`MappingError` with the reason the task fails for: an
    upstream value that is not a list, or more instances than ``max_length``.
    """
    lengths = [
        _length(session, task, name, value, dag_id, run_id, backend) for name, value in task.expand_input.items()
    ]
    total = math.prod(lengths)
    if total > max_length:
        raise MappingError(
            f"mapped task {task.task_id!r} would expand to {total} instances, over the "
            f"[core] max_map_length limit of {max_length}"
        )
    return total


def _length(
    session: Session, task: MappedOperator, name: str, value: Any, dag_id: str, run_id: str, backend: xcom.XComBackend
) -> int:
    if not isinstance(value, XComArg):
        return len(value)
    upstream = value.operator
    if isinstance(upstream, MappedOperator):  # its output is the list of its instances' results
        return len(mapped_indexes(session, dag_id, run_id, [upstream.task_id]).get(upstream.task_id, []))
    found = xcom.get_xcoms(
        session, dag_id, run_id, [upstream.task_id], value.key, allow_pickle=False, backend=backend
    ).get((upstream.task_id, -1), _MISSING)
    where = f"mapped task {task.task_id!r} cannot expand {name!r} over {upstream.task_id}'s XCom {value.key!r}"
    if found is _MISSING:
        raise MappingError(f"{where}: there is none (did it return None?); expand needs a list")
    if not isinstance(found, list | tuple):
        raise MappingError(f"{where}: it is a {type(found).__name__}, not a list")
    return len(found)
