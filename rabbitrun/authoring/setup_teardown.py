"""Setup and teardown tasks (Airflow 2.7+): ``@setup``, ``@teardown``, ``with setup >> teardown:`` and
which tasks decide a DAG run's state when teardowns are among its leaves.

A teardown runs once everything upstream of it is done, if one of its setups succeeded (its trigger
rule is all_done_setup_success), so resources a setup created are released even when the work
failed. Its own failure does not fail the DAG run unless ``on_failure_fail_dagrun=True``: the run's
state comes from its *effective leaves* (:func:`effective_leaves`), Airflow's rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar, overload

from rabbitrun.authoring.baseoperator import BaseOperator
from rabbitrun.authoring.decorators import TaskDecorator
from rabbitrun.authoring.xcomarg import XComArg
from rabbitrun.errors import DagDefinitionError

__all__ = ["effective_leaves", "setup", "teardown"]

P = ParamSpec("P")
R = TypeVar("R")


def _ignorable(task_: BaseOperator) -> bool:
    """A teardown whose failure does not fail the run."""
    return task_.is_teardown and not task_.on_failure_fail_dagrun


def effective_leaves(tasks: Iterable[BaseOperator]) -> set[str]:
    """The task ids whose states decide the run's state: tasks all of whose downstream tasks are
    ignorable teardowns and that are not ignorable teardowns themselves (Airflow's
    ``_tis_for_dagrun_state``); the plain leaves when there is none (a DAG of teardowns only)."""
    tasks = list(tasks)
    by_id = {t.task_id: t for t in tasks}
    leaves = {
        t.task_id
        for t in tasks
        if not _ignorable(t) and all(_ignorable(by_id[d]) for d in t.downstream_task_ids if d in by_id)
    }
    return leaves or {t.task_id for t in tasks if not t.downstream_task_ids}


# --- ``with setup >> teardown:`` ----------------------------------------------------------------

_SCOPES: list[tuple[BaseOperator, set[str]]] = []  # the open scopes: (their task, task ids before them)


def _task_ids(task_: BaseOperator) -> set[str]:
    dag = task_.dag
    if dag is None:
        raise DagDefinitionError(f"task {task_.task_id!r} must be in a DAG to open a setup/teardown scope")
    return set(getattr(dag, "task_ids", ()))


def _enter(task_: BaseOperator) -> None:
    if not (task_.is_setup or task_.is_teardown):
        raise DagDefinitionError(
            f"task {task_.task_id!r} is neither a setup nor a teardown: only they open a scope "
            "(`with setup_task >> teardown_task:`)"
        )
    _SCOPES.append((task_, _task_ids(task_)))


def _exit(task_: BaseOperator, failed: bool) -> None:
    opened, before = _SCOPES.pop()
    if opened is not task_ or failed or task_.dag is None:
        return
    dag = task_.dag
    if task_.is_teardown:
        teardowns = [task_]
        setups = [dag.get_task(t) for t in sorted(task_.upstream_task_ids) if dag.get_task(t).is_setup]
    else:
        teardowns = [dag.get_task(t) for t in sorted(task_.downstream_task_ids) if dag.get_task(t).is_teardown]
        setups = [task_]
    scoped = {*(t.task_id for t in setups), *(t.task_id for t in teardowns)}
    added = [dag.get_task(t) for t in sorted(_task_ids(task_) - before - scoped)]
    added_ids = {t.task_id for t in added}
    for work in added:
        if not work.upstream_task_ids & added_ids:
            work.set_upstream(list(setups))
        if not work.downstream_task_ids & added_ids:
            work.set_downstream(list(teardowns))


BaseOperator.scope_hooks = (_enter, _exit)


# --- @setup / @teardown -------------------------------------------------------------------------


class _SetupDecorator(TaskDecorator[P, R]):
    def __call__(self, *args: Any, **kwargs: Any) -> XComArg:
        return super().__call__(*args, **kwargs).as_setup()

    def override(self, **operator_kwargs: Any) -> TaskDecorator[P, R]:
        return _SetupDecorator(self.function, {**self.operator_kwargs, **operator_kwargs})


class _TeardownDecorator(TaskDecorator[P, R]):
    def __init__(self, function: Callable[P, R], operator_kwargs: dict[str, Any], fail_dagrun: bool) -> None:
        super().__init__(function, operator_kwargs)
        self.fail_dagrun = fail_dagrun

    def __call__(self, *args: Any, **kwargs: Any) -> XComArg:
        return super().__call__(*args, **kwargs).as_teardown(on_failure_fail_dagrun=self.fail_dagrun)

    def override(self, **operator_kwargs: Any) -> TaskDecorator[P, R]:
        return _TeardownDecorator(self.function, {**self.operator_kwargs, **operator_kwargs}, self.fail_dagrun)


def _task_kwargs(function: Callable[..., Any]) -> dict[str, Any]:
    """The operator arguments ``@task`` or ``@task(...)`` gave ``function`` (a TaskDecorator), if any."""
    return dict(function.operator_kwargs) if isinstance(function, TaskDecorator) else {"multiple_outputs": False}


def setup(python_callable: Callable[P, R]) -> TaskDecorator[P, R]:
    """``@setup`` (over a function or a ``@task``): its calls add setup tasks."""
    function = python_callable.function if isinstance(python_callable, TaskDecorator) else python_callable
    return _SetupDecorator(function, _task_kwargs(python_callable))


@overload
def teardown(python_callable: Callable[P, R], /) -> TaskDecorator[P, R]: ...


@overload
def teardown(
    python_callable: None = None, /, *, on_failure_fail_dagrun: bool = False
) -> Callable[[Callable[P, R]], TaskDecorator[P, R]]: ...


def teardown(
    python_callable: Callable[P, R] | None = None, /, *, on_failure_fail_dagrun: bool = False
) -> TaskDecorator[P, R] | Callable[[Callable[P, R]], TaskDecorator[P, R]]:
    """``@teardown`` or ``@teardown(on_failure_fail_dagrun=True)``: its calls add teardown tasks."""

    def decorate(fn: Callable[P, R]) -> TaskDecorator[P, R]:
        function = fn.function if isinstance(fn, TaskDecorator) else fn
        return _TeardownDecorator(function, _task_kwargs(fn), on_failure_fail_dagrun)

    return decorate(python_callable) if python_callable is not None else decorate
