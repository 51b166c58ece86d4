"""XComArg: a promise of a task's output, and the helpers that find and pull XComArgs in arguments.

``@task`` calls return an XComArg; passing it to another task makes the
producer upstream, and the value is pulled from XCom when the consumer runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from rabbitrun.authoring.baseoperator import BaseOperator, Context

__all__ = ["RETURN_VALUE_KEY", "XComArg", "resolve_xcom_args", "xcom_args_in"]

_T = TypeVar("_T")

RETURN_VALUE_KEY = "return_value"


class XComArg:
    """A reference to an XCom that a task will push: ``operator`` and ``key``."""

    def __init__(self, operator: BaseOperator, key: str = RETURN_VALUE_KEY) -> None:
        self.operator = operator
        self.key = key

    def __repr__(self) -> str:
        return f"XComArg({self.operator.task_id!r}, key={self.key!r})"

    def __str__(self) -> str:
        """The Jinja template that pulls this value, as Airflow renders an XComArg in an f-string:
        ``f"echo {extract.output}"`` in a templated field pulls the value when the task runs."""
        dag = self.operator.dag
        dag_part = f", dag_id='{dag.dag_id}'" if dag is not None else ""
        return f"{{{{ task_instance.xcom_pull(task_ids='{self.operator.task_id}'{dag_part}, key='{self.key}') }}}}"

    def __getitem__(self, key: str) -> XComArg:
        """``extract()["rows"]``: one key of a ``multiple_outputs`` task."""
        return XComArg(self.operator, key)

    def as_operators(self) -> list[BaseOperator]:
        return [self.operator]

    def as_setup(self) -> XComArg:
        """``@task`` output as a setup task (Airflow 2.7+)."""
        self.operator.as_setup()
        return self

    def as_teardown(self, *, setups: Any = None, on_failure_fail_dagrun: bool | None = None) -> XComArg:
        """``@task`` output as a teardown task of ``setups`` (see BaseOperator.as_teardown)."""
        self.operator.as_teardown(setups=setups, on_failure_fail_dagrun=on_failure_fail_dagrun)
        return self

    def __enter__(self) -> XComArg:
        self.operator.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.operator.__exit__(*exc_info)

    def set_upstream(self, other: Any, edge_modifier: Any = None) -> None:
        self.operator.set_upstream(other, edge_modifier=edge_modifier)

    def set_downstream(self, other: Any, edge_modifier: Any = None) -> None:
        self.operator.set_downstream(other, edge_modifier=edge_modifier)

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


def xcom_args_in(value: Any) -> list[XComArg]:
    """XComArgs in ``value`` itself or one level inside a list, tuple, set or dict."""
    if isinstance(value, XComArg):
        return [value]
    if isinstance(value, Mapping):
        return [v for v in value.values() if isinstance(v, XComArg)]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [v for v in value if isinstance(v, XComArg)]
    return []


def resolve_xcom_args(value: Any, context: Context) -> Any:
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


BaseOperator.output_factory = XComArg  # what task.output builds
BaseOperator.xcom_args_finder = xcom_args_in  # how template fields' XComArgs are found to link
