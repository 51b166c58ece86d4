"""Dynamic task mapping: ``.partial(...)`` and ``.expand(...)`` build a :class:`MappedOperator`.

A mapped task is one task of the DAG (it has dependencies, a queue, retries,
a trigger rule) that the scheduler turns into one task instance per element
of its expanded arguments once it is ready. Each instance runs the real
operator, built by :meth:`MappedOperator.unmap` from the partial arguments and
the element of its ``map_index``. Several expanded arguments map over their
cartesian product, the last argument varying fastest, as in Airflow.

Everything here is checked when the DAG file is parsed, so that a misspelt or
unmappable argument is a DAG import error, not a failure at run time.

``SomeOperator.partial`` reaches :class:`PartialOperator` through
``BaseOperator.partial_factory``, set at the end of this module: a mapped task is
a BaseOperator, so this module sits above ``baseoperator``. ``@task`` functions map
through ``decorators.PartialTask``, which builds the same :class:`MappedOperator`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from rabbitrun.authoring.baseoperator import BaseOperator, Context, _accepted_names, merged_default_args
from rabbitrun.authoring.dagcontext import outside_any_dag
from rabbitrun.authoring.xcomarg import XComArg, resolve_xcom_args, xcom_args_in
from rabbitrun.errors import DagDefinitionError

__all__ = ["ExpandValue", "MappedOperator", "PartialOperator", "check_expand", "element_index", "partial_kwargs"]

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
    for name, value in merged_default_args(out).items():
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
        check_expand(self.operator_class.__name__, mapped, self.kwargs, accepted)
        settings = sorted(set(mapped) & _TASK_SETTINGS)
        if settings:
            raise DagDefinitionError(
                f"{self.operator_class.__name__}.expand() cannot map task settings {settings}; give them to partial()"
            )
        missing = sorted(_required_args(self.operator_class) - set(self.kwargs) - set(mapped))
        if missing:
            raise DagDefinitionError(
                f"{self.operator_class.__name__} {self.kwargs['task_id']!r}: missing required "
                f"argument(s) {missing} in partial() or expand()"
            )
        return MappedOperator(self.operator_class, self.kwargs, mapped, into_op_kwargs=False)


class _MappedMeta(type(BaseOperator)):  # type: ignore[misc]
    """No default_args filling here: partial() already applied them to the real operator's arguments."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return type.__call__(cls, *args, **kwargs)


class MappedOperator(BaseOperator, metaclass=_MappedMeta):
    """The DAG's view of a mapped task: task settings from ``partial``, arguments still to expand.

    ``into_op_kwargs``: the mapped names are the ``@task`` function's arguments
    (``op_kwargs``), not the operator's constructor arguments.
    """

    def __init__(
        self,
        operator_class: type[BaseOperator],
        partial: Mapping[str, Any],
        expand_input: Mapping[str, ExpandValue],
        *,
        into_op_kwargs: bool,
    ) -> None:
        settings = {k: v for k, v in partial.items() if k in _TASK_SETTINGS}
        super().__init__(**settings)
        self.operator_class = operator_class
        self.partial_kwargs = {k: v for k, v in partial.items() if k != "dag"}
        self.expand_input = dict(expand_input)
        self.into_op_kwargs = into_op_kwargs
        for value in [
            *self.expand_input.values(),
            *self.partial_kwargs.values(),
            *dict(self.partial_kwargs.get("op_kwargs") or {}).values(),
        ]:
            for arg in xcom_args_in(value):
                self.set_upstream(arg)

    def __repr__(self) -> str:
        return f"<Mapped({self.operator_class.__name__}): {self.task_id}>"

    def execute(self, context: Context) -> Any:
        raise DagDefinitionError(
            f"mapped task {self.task_id!r} runs as its instances (map_index >= 0), each built by unmap()"
        )

    def unmap(self, map_index: int, context: Context) -> BaseOperator:
        """The real operator for instance ``map_index``: upstream outputs pulled, element picked."""
        values = {
            name: value.resolve(context) if isinstance(value, XComArg) else value
            for name, value in self.expand_input.items()
        }
        for name, value in values.items():
            if not isinstance(value, list | tuple):
                raise DagDefinitionError(
                    f"mapped task {self.task_id!r}: expand argument {name!r} is a {type(value).__name__}, not a list"
                )
        index = element_index(map_index, [len(v) for v in values.values()])
        element = {name: value[i] for (name, value), i in zip(values.items(), index, strict=True)}
        kwargs = dict(self.partial_kwargs)
        if self.into_op_kwargs:  # @task: partial outputs are pulled here, so the copy links to nothing
            fixed = {k: resolve_xcom_args(v, context) for k, v in dict(kwargs.get("op_kwargs") or {}).items()}
            kwargs["op_kwargs"] = {**fixed, **element}
        else:
            kwargs.update(element)
        with outside_any_dag():
            operator = self.operator_class(**kwargs)
        # the instance keeps the mapped task's identity: built outside any DAG and TaskGroup, its
        # own task_id lacks the group prefix
        operator.task_id, operator.task_group = self.task_id, self.task_group
        operator.dag, operator.params = self.dag, dict(self.params)
        operator._upstream, operator._downstream = set(self._upstream), set(self._downstream)  # noqa: SLF001 - same family
        return operator


def element_index(map_index: int, lengths: Sequence[int]) -> list[int]:
    """The element of each expanded argument for ``map_index``: the last one varies fastest."""
    total = 1
    for n in lengths:
        total *= n
    if not 0 <= map_index < total:
        raise DagDefinitionError(
            f"map_index {map_index} is out of range: the mapped arguments have {total} combination(s)"
        )
    index = []
    for n in reversed(lengths):
        index.append(map_index % n)
        map_index //= n
    return index[::-1]


def check_expand(owner: str, mapped: Mapping[str, Any], fixed: Mapping[str, Any], accepted: set[str]) -> None:
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
            raise DagDefinitionError(
                f"{owner}.expand({name}=...) needs a list, a tuple or a task's output, got {type(value).__name__}"
            )
        if any(isinstance(v, XComArg) for v in value):
            raise DagDefinitionError(
                f"{owner}.expand({name}=...): a literal list cannot hold task outputs; "
                "expand over a task that returns the list"
            )


def _required_args(cls: type[BaseOperator]) -> set[str]:
    """Constructor arguments of ``cls`` itself that have no default."""
    params = inspect.signature(cls.__init__).parameters.values()
    return {
        p.name
        for p in params
        if p.default is p.empty and p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


BaseOperator.partial_factory = PartialOperator  # what SomeOperator.partial(...) builds
