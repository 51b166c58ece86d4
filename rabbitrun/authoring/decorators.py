"""``@task``: turn a function into a task whose calls build the DAG's graph.

Calling a decorated function does not run it: it creates a
:class:`DecoratedPythonOperator` and returns an :class:`XComArg`, a promise
of that task's return value. Passing an XComArg to another decorated call
makes the producer upstream; the value is pulled from XCom at execute time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from rabbitrun.authoring.baseoperator import BaseOperator, Context
from rabbitrun.authoring.dag import DAG, get_current_dag
from rabbitrun.authoring.operators import PythonOperator

if TYPE_CHECKING:
    from rabbitrun.authoring.mapped import PartialTask

__all__ = ["DecoratedPythonOperator", "TaskDecorator", "XComArg", "task"]

P = ParamSpec("P")
R = TypeVar("R")
_T = TypeVar("_T")

RETURN_VALUE_KEY = "return_value"


class XComArg:
    """A reference to an XCom that a task will push: ``operator`` and ``key``."""

    def __init__(self, operator: BaseOperator, key: str = RETURN_VALUE_KEY) -> None:
        self.operator = operator
        self.key = key

    def __repr__(self) -> str:
        return f"XComArg({self.operator.task_id!r}, key={self.key!r})"

    def __getitem__(self, key: str) -> XComArg:
        """``extract()["rows"]``: one key of a ``multiple_outputs`` task."""
        return XComArg(self.operator, key)

    def as_operators(self) -> list[BaseOperator]:
        return [self.operator]

    def resolve(self, context: Context) -> Any:
        """Pull the value this XComArg stands for from the running task's ``ti``."""
        return context["ti"].xcom_pull(task_ids=self.operator.task_id, key=self.key)

    def __rshift__(self, other: _T) -> _T:
        return self.operator >> other

    def __lshift__(self, other: _T) -> _T:
        return self.operator << other

    def __rrshift__(self, other: Any) -> XComArg:
        self.operator.__rrshift__(other)
        return self

    def __rlshift__(self, other: Any) -> XComArg:
        self.operator.__rlshift__(other)
        return self


def _xcom_args_in(value: Any) -> list[XComArg]:
    """XComArgs in ``value`` itself or one level inside a list, tuple, set or dict."""
    if isinstance(value, XComArg):
        return [value]
    if isinstance(value, Mapping):
        return [v for v in value.values() if isinstance(v, XComArg)]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [v for v in value if isinstance(v, XComArg)]
    return []


def _resolve(value: Any, context: Context) -> Any:
    """Replace XComArgs (top level and one level deep) by their pulled values."""
    if isinstance(value, XComArg):
        return value.resolve(context)
    if isinstance(value, Mapping):
        return {k: _resolve_leaf(v, context) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(_resolve_leaf(v, context) for v in value)
    return value


def _resolve_leaf(value: Any, context: Context) -> Any:
    return value.resolve(context) if isinstance(value, XComArg) else value


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
            for arg in _xcom_args_in(value):
                self.set_upstream(arg)

    def execute(self, context: Context) -> Any:
        args = [_resolve(a, context) for a in self.op_args]
        kwargs = {k: _resolve(v, context) for k, v in self.op_kwargs.items()}
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


class TaskDecorator(Generic[P, R]):
    """The result of ``@task``: calling it adds a task to the current DAG."""

    def __init__(self, function: Callable[P, R], operator_kwargs: Mapping[str, Any]) -> None:
        self.function = function
        self.operator_kwargs = dict(operator_kwargs)
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any, **kwargs: Any) -> XComArg:
        """Add a task calling the function with these arguments; XComArgs stand for values.

        Typed ``Any`` because arguments are usually XComArgs standing for the
        declared parameter types, which the function's own signature cannot say.
        """
        op_kwargs = dict(self.operator_kwargs)
        dag = op_kwargs.get("dag") or get_current_dag()
        task_id = op_kwargs.pop("task_id", None) or self.function.__name__
        if isinstance(dag, DAG):
            task_id = dag.unique_task_id(task_id)
        operator = DecoratedPythonOperator(
            task_id=task_id, python_callable=self.function, op_args=args, op_kwargs=kwargs, **op_kwargs
        )
        return XComArg(operator)

    def partial(self, **kwargs: Any) -> PartialTask:
        """Fix some function arguments of a mapped task: ``add.partial(y=10).expand(x=[1, 2, 3])``."""
        from rabbitrun.authoring.mapped import PartialTask

        return PartialTask(self.function, self.operator_kwargs, kwargs)

    def expand(self, **mapped: Any) -> XComArg:
        """One task instance per element: ``consume.expand(x=produce())``; the XComArg stands for
        the list of results in map-index order."""
        return self.partial().expand(**mapped)

    def override(self, **operator_kwargs: Any) -> TaskDecorator[P, R]:
        """Same function, other task arguments: ``extract.override(task_id="e2")()``."""
        return TaskDecorator(self.function, {**self.operator_kwargs, **operator_kwargs})


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
