"""Dynamic task mapping: ``.partial(...)`` and ``.expand(...)`` build a :class:`MappedOperator`.

A mapped task is one task of the DAG (it has dependencies, a queue, retries,
a trigger rule) that the scheduler turns into one task instance per element
of its expanded arguments once it is ready. Each instance runs the real
operator, built by :meth:`MappedOperator.unmap` from the partial arguments and
the element of its ``map_index``. Several expanded arguments map over their
cartesian product, the last argument varying fastest, as in Airflow.

Everything here is checked when the DAG file is parsed, so that a misspelt or
unmappable argument is a DAG import error, not a failure at run time.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from rabbitrun.authoring import dag as dag_module
from rabbitrun.authoring.baseoperator import BaseOperator, Context, _accepted_names
from rabbitrun.authoring.dag import DAG, get_current_dag
from rabbitrun.authoring.decorators import DecoratedPythonOperator, XComArg, _resolve, _xcom_args_in
from rabbitrun.errors import DagDefinitionError

__all__ = ["ExpandValue", "MappedOperator", "PartialOperator", "PartialTask", "element_index", "partial_kwargs"]

#: What ``expand`` accepts for one argument: a literal list/tuple, or an upstream task's output.
ExpandValue = Sequence[Any] | XComArg

#: Arguments of BaseOperator itself (task settings): given to partial(), never mapped.
_TASK_SETTINGS = frozenset(_accepted_names(BaseOperator))


def partial_kwargs(cls: type[BaseOperator], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` checked against what ``cls`` accepts, with the DAG's ``default_args`` filled in
    (what the operator metaclass does for a direct call, done here because the real operator is
    only built at run time)."""
    accepted = _accepted_names(cls)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise DagDefinitionError(f"{cls.__name__}.partial() got unknown argument(s) {unknown}")
    out = dict(kwargs)
    dag = out.get("dag") or get_current_dag()
    if isinstance(dag, DAG):
        for name, value in dag.default_args.items():
            if name in accepted and name not in out:
                out[name] = value
    return out


class PartialOperator:
    """``SomeOperator.partial(task_id=..., ...)``: waits for ``.expand(...)`` to become a task."""

    def __init__(self, operator_class: type[BaseOperator], kwargs: Mapping[str, Any]) -> None:
        if "task_id" not in kwargs:
            raise DagDefinitionError(f"{operator_class.__name__}.partial() needs a task_id")
        self.operator_class = operator_class
        self.kwargs = partial_kwargs(operator_class, kwargs)

    def expand(self, **mapped: ExpandValue) -> MappedOperator:
        """One task instance per element of the mapped arguments (their product if several)."""
        accepted = _accepted_names(self.operator_class)
        _check_expand(self.operator_class.__name__, mapped, self.kwargs, accepted)
        settings = sorted(set(mapped) & _TASK_SETTINGS)
        if settings:
            raise DagDefinitionError(f"{self.operator_class.__name__}.expand() cannot map task settings {settings}; "
                                     "give them to partial()")
        missing = sorted(_required_args(self.operator_class) - set(self.kwargs) - set(mapped))
        if missing:
            raise DagDefinitionError(f"{self.operator_class.__name__} {self.kwargs['task_id']!r}: missing required "
                                     f"argument(s) {missing} in partial() or expand()")
        return MappedOperator(self.operator_class, self.kwargs, mapped, into_op_kwargs=False)


class PartialTask:
    """``@task`` function ``.partial(y=10)``: waits for ``.expand(x=...)``; arguments are the function's."""

    def __init__(self, function: Callable[..., Any], operator_kwargs: Mapping[str, Any],
                 fixed: Mapping[str, Any]) -> None:
        _check_function_args(function, fixed, "partial")
        self.function = function
        self.operator_kwargs = dict(operator_kwargs)
        self.fixed = dict(fixed)

    def expand(self, **mapped: ExpandValue) -> XComArg:
        """Add the mapped task; its XComArg stands for the list of results in map-index order."""
        _check_function_args(self.function, mapped, "expand")
        _check_expand(self.function.__name__, mapped, self.fixed, set(mapped))
        kwargs = dict(self.operator_kwargs)
        dag = kwargs.get("dag") or get_current_dag()
        task_id = kwargs.pop("task_id", None) or self.function.__name__
        if isinstance(dag, DAG):
            task_id = dag.unique_task_id(task_id)
        kwargs.update(task_id=task_id, python_callable=self.function, op_kwargs=self.fixed)
        operator = MappedOperator(DecoratedPythonOperator, partial_kwargs(DecoratedPythonOperator, kwargs), mapped,
                                  into_op_kwargs=True)
        return XComArg(operator)


class _MappedMeta(type(BaseOperator)):  # type: ignore[misc]
    """No default_args filling here: partial() already applied them to the real operator's arguments."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return type.__call__(cls, *args, **kwargs)


class MappedOperator(BaseOperator, metaclass=_MappedMeta):
    """The DAG's view of a mapped task: task settings from ``partial``, arguments still to expand.

    ``into_op_kwargs``: the mapped names are the ``@task`` function's arguments
    (``op_kwargs``), not the operator's constructor arguments.
    """

    def __init__(self, operator_class: type[BaseOperator], partial: Mapping[str, Any],
                 expand_input: Mapping[str, ExpandValue], *, into_op_kwargs: bool) -> None:
        settings = {k: v for k, v in partial.items() if k in _TASK_SETTINGS}
        super().__init__(**settings)
        self.operator_class = operator_class
        self.partial_kwargs = {k: v for k, v in partial.items() if k != "dag"}
        self.expand_input = dict(expand_input)
        self.into_op_kwargs = into_op_kwargs
        for value in [*self.expand_input.values(), *self.partial_kwargs.values(),
                      *dict(self.partial_kwargs.get("op_kwargs") or {}).values()]:
            for arg in _xcom_args_in(value):
                self.set_upstream(arg)

    def __repr__(self) -> str:
        return f"<Mapped({self.operator_class.__name__}): {self.task_id}>"

    def execute(self, context: Context) -> Any:
        raise DagDefinitionError(f"mapped task {self.task_id!r} runs as its instances (map_index >= 0), "
                                 "each built by unmap()")

    def unmap(self, map_index: int, context: Context) -> BaseOperator:
        """The real operator for instance ``map_index``: upstream outputs pulled, element picked."""
        values = {name: value.resolve(context) if isinstance(value, XComArg) else value
                  for name, value in self.expand_input.items()}
        for name, value in values.items():
            if not isinstance(value, list | tuple):
                raise DagDefinitionError(f"mapped task {self.task_id!r}: expand argument {name!r} is a "
                                         f"{type(value).__name__}, not a list")
        index = element_index(map_index, [len(v) for v in values.values()])
        element = {name: value[i] for (name, value), i in zip(values.items(), index, strict=True)}
        kwargs = dict(self.partial_kwargs)
        if self.into_op_kwargs:  # @task: partial outputs are pulled here, so the copy links to nothing
            fixed = {k: _resolve(v, context) for k, v in dict(kwargs.get("op_kwargs") or {}).items()}
            kwargs["op_kwargs"] = {**fixed, **element}
        else:
            kwargs.update(element)
        with _outside_any_dag():
            operator = self.operator_class(**kwargs)
        operator.dag, operator.params = self.dag, dict(self.params)
        operator._upstream, operator._downstream = set(self._upstream), set(self._downstream)
        return operator


def element_index(map_index: int, lengths: Sequence[int]) -> list[int]:
    """The element of each expanded argument for ``map_index``: the last one varies fastest."""
    total = 1
    for n in lengths:
        total *= n
    if not 0 <= map_index < total:
        raise DagDefinitionError(f"map_index {map_index} is out of range: the mapped arguments have "
                                 f"{total} combination(s)")
    index = []
    for n in reversed(lengths):
        index.append(map_index % n)
        map_index //= n
    return index[::-1]


@contextlib.contextmanager
def _outside_any_dag() -> Iterator[None]:
    """Build an unmapped copy without adding it to a DAG that happens to be open around the call."""
    token = dag_module._current_dags.set(())
    try:
        yield
    finally:
        dag_module._current_dags.reset(token)


def _check_expand(owner: str, mapped: Mapping[str, Any], fixed: Mapping[str, Any], accepted: set[str]) -> None:
    if not mapped:
        raise DagDefinitionError(f"{owner}.expand() needs at least one argument to map over")
    unknown = sorted(set(mapped) - accepted)
    if unknown:
        raise DagDefinitionError(f"{owner}.expand() got unknown argument(s) {unknown}")
    both = sorted(set(mapped) & set(fixed))
    if both:
        raise DagDefinitionError(f"{owner}: argument(s) {both} given to both partial() and expand()")
    for name, value in mapped.items():
        if isinstance(value, XComArg):
            continue
        if not isinstance(value, list | tuple):
            raise DagDefinitionError(f"{owner}.expand({name}=...) needs a list, a tuple or a task's output, "
                                     f"got {type(value).__name__}")
        if any(isinstance(v, XComArg) for v in value):
            raise DagDefinitionError(f"{owner}.expand({name}=...): a literal list cannot hold task outputs; "
                                     "expand over a task that returns the list")


def _check_function_args(function: Callable[..., Any], kwargs: Mapping[str, Any], where: str) -> None:
    params = inspect.signature(function).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise DagDefinitionError(f"{function.__name__}.{where}() got unknown argument(s) {unknown}; "
                                 f"{function.__name__} takes {sorted(names)}")


def _required_args(cls: type[BaseOperator]) -> set[str]:
    """Constructor arguments of ``cls`` itself that have no default."""
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name for p in params if p.default is p.empty and p.name != "self"
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
