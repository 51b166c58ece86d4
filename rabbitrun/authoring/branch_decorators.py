"""``@task.branch`` and ``@task.short_circuit``: the decorated forms of BranchPythonOperator and
ShortCircuitOperator (attributes of ``task``, set in rabbitrun.authoring.decorators)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from rabbitrun.authoring.baseoperator import Context
from rabbitrun.authoring.decorators import DecoratedPythonOperator, TaskDecorator
from rabbitrun.authoring.skipping import BranchMixIn, ShortCircuitMixIn

__all__ = ["DecoratedBranchOperator", "DecoratedShortCircuitOperator", "branch_task", "short_circuit_task"]

P = ParamSpec("P")
R = TypeVar("R")


class DecoratedBranchOperator(DecoratedPythonOperator, BranchMixIn):
    """``@task.branch``: the function returns the task id(s) to follow."""

    def execute(self, context: Context) -> Any:
        return self.do_branch(context, super().execute(context))


class DecoratedShortCircuitOperator(DecoratedPythonOperator, ShortCircuitMixIn):
    """``@task.short_circuit``: a falsy result skips downstream."""

    def __init__(self, *args: Any, ignore_downstream_trigger_rules: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ignore_downstream_trigger_rules = bool(ignore_downstream_trigger_rules)

    def execute(self, context: Context) -> Any:
        return self.short_circuit(context, super().execute(context))


def _decorator(
    operator_class: type[DecoratedPythonOperator],
    python_callable: Callable[P, R] | None,
    operator_kwargs: dict[str, Any],
) -> TaskDecorator[P, R] | Callable[[Callable[P, R]], TaskDecorator[P, R]]:
    kwargs = {"multiple_outputs": False, **operator_kwargs}

    def decorate(function: Callable[P, R]) -> TaskDecorator[P, R]:
        return TaskDecorator(function, kwargs, operator_class)

    return decorate(python_callable) if python_callable is not None else decorate


def branch_task(
    python_callable: Callable[P, R] | None = None, /, **operator_kwargs: Any
) -> TaskDecorator[P, R] | Callable[[Callable[P, R]], TaskDecorator[P, R]]:
    """``@task.branch`` or ``@task.branch(task_id=...)``."""
    return _decorator(DecoratedBranchOperator, python_callable, operator_kwargs)


def short_circuit_task(
    python_callable: Callable[P, R] | None = None, /, **operator_kwargs: Any
) -> TaskDecorator[P, R] | Callable[[Callable[P, R]], TaskDecorator[P, R]]:
    """``@task.short_circuit`` or ``@task.short_circuit(ignore_downstream_trigger_rules=False)``."""
    return _decorator(DecoratedShortCircuitOperator, python_callable, operator_kwargs)
