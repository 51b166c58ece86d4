"""Around ``execute``: Airflow's hooks and XCom rules for every operator, classic or decorated.

``pre_execute(context)`` runs just before ``execute`` and ``post_execute(context, result)`` just
after it (a method an operator overrides, or the callable given as the ``pre_execute=`` /
``post_execute=`` argument). The return value is the ``return_value`` XCom unless the operator has
``do_xcom_push=False``; with ``multiple_outputs=True`` a returned dict also becomes one XCom per
key. The attributes are read with ``getattr``: an operator without them gets Airflow's defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rabbitrun.authoring import BaseOperator, DecoratedPythonOperator

__all__ = ["execute"]


def execute(task: BaseOperator, context: dict[str, Any]) -> Any:
    """Run the task's hooks and ``execute``; return what becomes its ``return_value`` (None: nothing)."""
    _hook(task, "pre_execute", context)
    result = task.execute(context)
    _hook(task, "post_execute", context, result)
    if not getattr(task, "do_xcom_push", True):
        return None
    # a @task pushes its own outputs (DecoratedPythonOperator.execute); the rest are pushed here
    if (
        result is not None
        and getattr(task, "multiple_outputs", False)
        and not isinstance(task, DecoratedPythonOperator)
    ):
        push_outputs(task.task_id, result, context)
    return result


def push_outputs(task_id: str, result: Any, context: Mapping[str, Any]) -> None:
    """``multiple_outputs=True``: each key of the returned dict becomes its own XCom."""
    if not isinstance(result, Mapping):
        raise TypeError(
            f"task {task_id!r} has multiple_outputs=True and returned {type(result).__name__}; it must return a dict"
        )
    bad = [k for k in result if not isinstance(k, str)]
    if bad:
        raise TypeError(f"task {task_id!r}: multiple_outputs keys must be str, got {bad!r}")
    for key, value in result.items():
        context["ti"].xcom_push(key=key, value=value)


def _hook(task: BaseOperator, name: str, *args: Any) -> None:
    """Call the operator's ``pre_execute``/``post_execute``: a method or a callable stored under that
    name; else the callable under ``_<name>_hook`` (where Airflow's method finds the constructor's)."""
    hook = getattr(task, name, None)
    if not callable(hook):
        hook = getattr(task, f"_{name}_hook", None)
    if callable(hook):
        hook(*args)
