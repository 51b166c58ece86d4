"""``@task``: turn a function into a task whose calls build the DAG's graph.

Calling a decorated function does not run it: it creates a
:class:`DecoratedPythonOperator` and returns an :class:`XComArg`, a promise
of that task's return value. Passing an XComArg to another decorated call
makes the producer upstream; the value is pulled from XCom at execute time.
``fn.partial(...).expand(...)`` (:class:`PartialTask`) maps a decorated function.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, ParamSpec, TypeVar, overload

from rabbitrun.authoring.baseoperator import Context
from rabbitrun.authoring.dagcontext import dag_for, unique_label
from rabbitrun.authoring.mapped import ExpandValue, MappedOperator, check_expand, partial_kwargs
from rabbitrun.authoring.operators import PythonOperator
from rabbitrun.authoring.xcomarg import XComArg, resolve_xcom_args, xcom_args_in
from rabbitrun.errors import DagDefinitionError

__all__ = ["DecoratedPythonOperator", "PartialTask", "TaskDecorator", "XComArg", "task"]

P = ParamSpec("P")
R = TypeVar("R")


class DecoratedPythonOperator(PythonOperator):
    """A PythonOperator made by ``@task``; its arguments may hold XComArgs."""

    def __init__(
        self,
        task_id: str,
        python_callable: Callable[..., Any],
        op_args: Sequence[Any] = (),
        op_kwargs: Mapping[str, Any] | None = None,
        multiple_outputs: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(task_id, python_callable, op_args=op_args, op_kwargs=op_kwargs, **kwargs)
        self.multiple_outputs = multiple_outputs
        for value in [*self.op_args, *self.op_kwargs.values()]:
            for arg in xcom_args_in(value):
                self.set_upstream(arg)

    def execute(self, context: Context) -> Any:
        args = [resolve_xcom_args(a, context) for a in self.op_args]
        kwargs = {k: resolve_xcom_args(v, context) for k, v in self.op_kwargs.items()}
        result = self.execute_callable(args, kwargs, context)
        if self.multiple_outputs:
            self._push_outputs(result, context)
        return result

    def _push_outputs(self, result: Any, context: Context) -> None:
        """``multiple_outputs=True``: each key of the returned dict becomes its own XCom."""
        if not isinstance(result, Mapping):
            raise TypeError(f"task {self.task_id!r} has multiple_outputs=True but returned {type(result).__name__}")
        for key, value in result.items():
            if not isinstance(key, str):
                raise TypeError(f"task {self.task_id!r}: multiple_outputs keys must be str, got {key!r}")
            context["ti"].xcom_push(key=key, value=value)


class PartialTask:
    """``@task`` function ``.partial(y=10)``: waits for ``.expand(x=...)``; arguments are the function's."""

    def __init__(
        self, function: Callable[..., Any], operator_kwargs: Mapping[str, Any], fixed: Mapping[str, Any]
    ) -> None:
        _check_function_args(function, fixed, "partial")
        self.function = function
        self.operator_kwargs = dict(operator_kwargs)
        self.fixed = dict(fixed)

    def expand(self, **mapped: ExpandValue) -> XComArg:
        """Add the mapped task; its XComArg stands for the list of results in map-index order."""
        _check_function_args(self.function, mapped, "expand")
        check_expand(self.function.__name__, mapped, self.fixed, set(mapped))
        kwargs = dict(self.operator_kwargs)
        dag = dag_for(kwargs)
        task_id = kwargs.pop("task_id", None) or self.function.__name__
        if dag is not None:
            task_id = unique_label(dag, task_id, kwargs.get("task_group"))
        kwargs.update(task_id=task_id, python_callable=self.function, op_kwargs=self.fixed)
        operator = MappedOperator(
            DecoratedPythonOperator, partial_kwargs(DecoratedPythonOperator, kwargs), mapped, into_op_kwargs=True
        )
        return XComArg(operator)


def _check_function_args(function: Callable[..., Any], kwargs: Mapping[str, Any], where: str) -> None:
    params = inspect.signature(function).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise DagDefinitionError(
            f"{function.__name__}.{where}() got unknown argument(s) {unknown}; "
            f"{function.__name__} takes {sorted(names)}"
        )


class TaskDecorator(Generic[P, R]):
    """The result of ``@task``: calling it adds a task to the current DAG."""

    def __init__(
        self,
        function: Callable[P, R],
        operator_kwargs: Mapping[str, Any],
        operator_class: type[DecoratedPythonOperator] = DecoratedPythonOperator,
    ) -> None:
        self.function = function
        self.operator_kwargs = dict(operator_kwargs)
        self.operator_class = operator_class  # @task.branch, @task.short_circuit: their own operators
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any, **kwargs: Any) -> XComArg:
        """Add a task calling the function with these arguments; XComArgs stand for values.

        Typed ``Any`` because arguments are usually XComArgs standing for the
        declared parameter types, which the function's own signature cannot say.
        """
        op_kwargs = dict(self.operator_kwargs)
        dag = dag_for(op_kwargs)
        task_id = op_kwargs.pop("task_id", None) or self.function.__name__
        if dag is not None:
            task_id = unique_label(dag, task_id, op_kwargs.get("task_group"))
        operator = self.operator_class(
            task_id=task_id, python_callable=self.function, op_args=args, op_kwargs=kwargs, **op_kwargs
        )
        return XComArg(operator)

    def partial(self, **kwargs: Any) -> PartialTask:
        """Fix some function arguments of a mapped task: ``add.partial(y=10).expand(x=[1, 2, 3])``."""
        return PartialTask(self.function, self.operator_kwargs, kwargs)

    def expand(self, **mapped: Any) -> XComArg:
        """One task instance per element: ``consume.expand(x=produce())``; the XComArg stands for
        the list of results in map-index order."""
        return self.partial().expand(**mapped)

    def override(self, **operator_kwargs: Any) -> TaskDecorator[P, R]:
        """Same function, other task arguments: ``extract.override(task_id="e2")()``."""
        return TaskDecorator(self.function, {**self.operator_kwargs, **operator_kwargs}, self.operator_class)


@overload
def task(python_callable: Callable[P, R], /) -> TaskDecorator[P, R]: ...


@overload
def task(
    python_callable: None = None, /, *, multiple_outputs: bool = False, **operator_kwargs: Any
) -> Callable[[Callable[P, R]], TaskDecorator[P, R]]: ...


def task(
    python_callable: Callable[P, R] | None = None, /, *, multiple_outputs: bool = False, **operator_kwargs: Any
) -> TaskDecorator[P, R] | Callable[[Callable[P, R]], TaskDecorator[P, R]]:
    """Use as ``@task`` or ``@task(task_id=..., queue=..., retries=..., multiple_outputs=...)``."""
    kwargs = {**operator_kwargs, "multiple_outputs": multiple_outputs}

    def decorate(function: Callable[P, R]) -> TaskDecorator[P, R]:
        return TaskDecorator(function, kwargs)

    if python_callable is not None:
        return decorate(python_callable)
    return decorate


# @task.bash / .sensor / .virtualenv / .external_python live in their own module; attached here so `task` carries them
from rabbitrun.authoring import task_variants as _variants  # noqa: E402

task.bash = _variants.bash  # type: ignore[attr-defined]
task.sensor = _variants.sensor  # type: ignore[attr-defined]
task.virtualenv = _variants.virtualenv  # type: ignore[attr-defined]
task.external_python = _variants.external_python  # type: ignore[attr-defined]
