"""The DAG an operator joins: the "current DAG" stack of ``with DAG(...):``, id checks, and the
:class:`OwningDag` Protocol through which operators see their DAG.

Operators attach themselves to the DAG that is current while they are created.
That current DAG lives in a :mod:`contextvars` stack, the only mutable state of
authoring that is not on an instance, so DAG files imported in different
contexts (threads, the DagBag's isolated import context) never see each other's
DAGs.

This module sits below both ``dag`` and ``baseoperator``: a DAG holds operators
(``dag`` imports ``baseoperator``), so an operator knows its DAG only through
:class:`OwningDag`, which :class:`rabbitrun.authoring.dag.DAG` implements.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from typing import Any, Protocol, TypeVar, runtime_checkable

from rabbitrun.errors import DagDefinitionError

__all__ = [
    "ID_PATTERN",
    "OwningDag",
    "OwningGroup",
    "collecting_dags",
    "current_dag",
    "current_group",
    "dag_for",
    "enter",
    "enter_group",
    "leave",
    "leave_group",
    "outside_any_dag",
    "register_dag",
    "unique_label",
    "validate_id",
]

#: dag_id and task_id end up in file paths, queue payloads and URLs: keep them tame.
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]+$")

TaskT = TypeVar("TaskT")


@runtime_checkable
class OwningDag(Protocol[TaskT]):
    """What an operator needs of the DAG it belongs to (``TaskT``: the operator type)."""

    @property
    def dag_id(self) -> str: ...

    @property
    def default_args(self) -> Mapping[str, Any]: ...

    @property
    def params(self) -> Mapping[str, Any]: ...

    def has_task(self, task_id: str) -> bool: ...

    def get_task(self, task_id: str) -> TaskT: ...

    def add_task(self, task: TaskT) -> None: ...

    def unique_task_id(self, base: str) -> str: ...

    def set_edge_info(self, upstream_task_id: str, downstream_task_id: str, info: Mapping[str, Any]) -> None: ...


@runtime_checkable
class OwningGroup(Protocol):
    """What an operator needs of the TaskGroup it is created in (rabbitrun.authoring.taskgroup)."""

    @property
    def dag(self) -> OwningDag[Any] | None: ...

    @property
    def default_args(self) -> Mapping[str, Any]: ...

    def child_id(self, label: str) -> str: ...

    def add(self, node: Any) -> None: ...


_current_dags: ContextVar[tuple[OwningDag[Any], ...]] = ContextVar("rabbitrun_current_dags", default=())


def current_dag() -> OwningDag[Any] | None:
    """Return the innermost DAG entered with ``with`` in this context, if any."""
    stack = _current_dags.get()
    return stack[-1] if stack else None


_current_groups: ContextVar[tuple[OwningGroup, ...]] = ContextVar("rabbitrun_current_groups", default=())

# DAGs a `with DAG(...)` block (or an @dag call) finished while a DAG file imports: the DagBag
# registers them even when no module global names them, as Airflow >= 2.4 does
_collected: ContextVar[list[Any] | None] = ContextVar("rabbitrun_collected_dags", default=None)


def current_group() -> OwningGroup | None:
    """The innermost TaskGroup entered with ``with`` in this context, if any."""
    stack = _current_groups.get()
    return stack[-1] if stack else None


def enter_group(group: OwningGroup) -> Token[tuple[OwningGroup, ...]]:
    return _current_groups.set((*_current_groups.get(), group))


def leave_group(token: Token[tuple[OwningGroup, ...]]) -> None:
    _current_groups.reset(token)


def register_dag(dag: Any) -> None:
    """Record ``dag`` for the DagBag import running in this context (no-op outside one)."""
    collected = _collected.get()
    if collected is not None and all(d is not dag for d in collected):
        collected.append(dag)


@contextlib.contextmanager
def collecting_dags() -> Iterator[list[Any]]:
    """Collect the DAGs :func:`register_dag` records while the block runs (a DAG file's import)."""
    collected: list[Any] = []
    token = _collected.set(collected)
    try:
        yield collected
    finally:
        _collected.reset(token)


def unique_label(dag: OwningDag[Any], base: str, group: Any = None) -> str:
    """The task_id to give an @task call: ``base``, or ``base__1``, ... so that the id it gets
    inside its TaskGroup (``group.child_id``) is free in ``dag``."""
    group = group if isinstance(group, OwningGroup) else current_group()
    if group is None:
        return dag.unique_task_id(base)
    label, n = base, 0
    while dag.has_task(group.child_id(label)):
        n += 1
        label = f"{base}__{n}"
    return label


def dag_for(kwargs: Mapping[str, Any]) -> OwningDag[Any] | None:
    """The DAG a task built with these constructor kwargs joins: ``dag=`` if given, else the current one."""
    given = kwargs.get("dag")
    if not given:
        dag = current_dag()
        if dag is None:
            group = kwargs.get("task_group") or current_group()
            if isinstance(group, OwningGroup):
                return group.dag
        return dag
    return given if isinstance(given, OwningDag) else None


def enter(dag: OwningDag[Any]) -> Token[tuple[OwningDag[Any], ...]]:
    """Make ``dag`` the current DAG (``DAG.__enter__``); :func:`leave` with the token undoes it."""
    return _current_dags.set((*_current_dags.get(), dag))


def leave(token: Token[tuple[OwningDag[Any], ...]]) -> None:
    _current_dags.reset(token)


@contextlib.contextmanager
def outside_any_dag() -> Iterator[None]:
    """Build an operator without adding it to a DAG that happens to be open around the call."""
    token = _current_dags.set(())
    group_token = _current_groups.set(())
    try:
        yield
    finally:
        _current_groups.reset(group_token)
        _current_dags.reset(token)


def validate_id(kind: str, value: object) -> str:
    """Check a dag_id/task_id early so a bad id fails in the DAG file, not on the wire."""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise DagDefinitionError(
            f"invalid {kind} {value!r}: use only letters, digits, '_', '.' and '-' (at least one character)"
        )
    return value
