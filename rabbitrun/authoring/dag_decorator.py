"""``@dag``: a function that builds a DAG when called, as Airflow's ``airflow.decorators.dag``.

``@dag(schedule=None, start_date=...)`` over ``def etl(rows: int = 10): ...`` makes ``etl`` a
factory: ``etl()`` opens ``DAG("etl", params={"rows": 10}, ...)``, runs the body inside it and
returns the DAG. The function's parameters become DAG params (their defaults, or the values
the call gives); inside the body each parameter is a :class:`DagParam`, which a task argument
or template field resolves to the run's param value. The DAG is registered by the DagBag even
when the module does not keep it in a global (``etl()`` alone at the bottom of the file).
The function's docstring becomes ``doc_md`` unless one is given.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, overload

from rabbitrun.authoring.baseoperator import BaseOperator
from rabbitrun.authoring.dag import DAG
from rabbitrun.authoring.params import Param
from rabbitrun.authoring.xcomarg import XComArg
from rabbitrun.errors import DagDefinitionError

__all__ = ["DagFactory", "DagParam", "dag"]


class DagParam(XComArg):
    """A ``@dag`` function's parameter inside its body: resolves to ``context["params"][name]``.

    It is an XComArg without a producer, so every place that resolves XComArgs (task
    arguments, template fields, ``expand``) resolves it; it adds no dependency.
    """

    def __init__(self, name: str, default: Any) -> None:
        self.name = name
        self.default = default
        self.key = name

    def __repr__(self) -> str:
        return f"DagParam({self.name!r})"

    def __str__(self) -> str:
        return f"{{{{ params[{self.name!r}] }}}}"

    def __getitem__(self, key: str) -> XComArg:
        raise DagDefinitionError(f"DAG param {self.name!r} cannot be indexed at DAG definition time")

    def as_operators(self) -> list[BaseOperator]:
        return []

    def resolve(self, context: Any) -> Any:
        return context["params"].get(self.name, self.default)


class DagFactory:
    """The decorated function: calling it builds and returns the DAG."""

    def __init__(self, function: Callable[..., Any], dag_id: str | None, dag_kwargs: dict[str, Any]) -> None:
        self.function = function
        self.dag_id = dag_id or function.__name__
        self.dag_kwargs = dag_kwargs
        self.signature = inspect.signature(function)
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any, **kwargs: Any) -> DAG:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise DagDefinitionError(f"@dag {self.dag_id!r}: {exc}") from None
        bound.apply_defaults()
        params = dict(self.dag_kwargs.get("params") or {})
        for name, value in bound.arguments.items():
            kind = self.signature.parameters[name].kind
            if kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                continue  # *args/**kwargs cannot be named params
            current = params.get(name)
            if isinstance(current, Param) and not isinstance(value, Param):
                params[name] = Param(value, current.description, **current.schema)  # the call overrides the default
            else:
                params[name] = value
        options = {**self.dag_kwargs, "params": params}
        if options.get("doc_md") is None and self.function.__doc__:
            options["doc_md"] = inspect.cleandoc(self.function.__doc__)
        with DAG(self.dag_id, **options) as built:
            stand_ins = {name: DagParam(name, built.params[name]) for name in bound.arguments if name in params}
            call_args = {
                name: stand_ins.get(name, value)
                for name, value in bound.arguments.items()
                if self.signature.parameters[name].kind
                not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
            }
            self.function(**call_args)
        return built


@overload
def dag(dag_id_or_function: Callable[..., Any], /) -> DagFactory: ...


@overload
def dag(dag_id_or_function: str | None = None, /, **dag_kwargs: Any) -> Callable[[Callable[..., Any]], DagFactory]: ...


def dag(
    dag_id_or_function: str | Callable[..., Any] | None = None, /, **dag_kwargs: Any
) -> DagFactory | Callable[[Callable[..., Any]], DagFactory]:
    """``@dag``, ``@dag()``, ``@dag("my_id", schedule=...)`` or ``@dag(dag_id="my_id", ...)``."""
    if callable(dag_id_or_function):
        return DagFactory(dag_id_or_function, None, dag_kwargs)
    dag_id = dag_id_or_function or dag_kwargs.pop("dag_id", None)

    def decorate(function: Callable[..., Any]) -> DagFactory:
        return DagFactory(function, dag_id, dag_kwargs)

    return decorate
