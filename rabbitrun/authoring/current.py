"""``get_current_context()``: the running task's context, from anywhere inside its ``execute``.

The runner sets it for the duration of one attempt (:func:`running`); outside a task there is none,
and asking is an error, as in Airflow. A context variable, not a global: threads a task starts
with ``contextvars.copy_context()`` see it too, and nothing leaks from one attempt to the next.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from rabbitrun.errors import DagError

__all__ = ["get_current_context", "running"]

_CURRENT: ContextVar[Mapping[str, Any] | None] = ContextVar("rabbitrun_task_context", default=None)


class NoCurrentContext(DagError):
    """``get_current_context()`` was called outside a running task."""


def get_current_context() -> Mapping[str, Any]:
    """The context of the task running now (``ti``, ``ds``, ``params``, ...), as ``execute`` gets it."""
    context = _CURRENT.get()
    if context is None:
        raise NoCurrentContext(
            "Current context was requested but no context was found! Are you running within a task? "
            "(get_current_context() works only while a task's execute runs)"
        )
    return context


@contextmanager
def running(context: Mapping[str, Any]) -> Iterator[None]:
    """Make ``context`` the current one while the task runs (the runner's side)."""
    token = _CURRENT.set(context)
    try:
        yield
    finally:
        _CURRENT.reset(token)
