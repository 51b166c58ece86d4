"""``@task.bash``, ``@task.sensor``, ``@task.virtualenv``, ``@task.external_python``: other task kinds.

``@task.bash``: the function returns the command string, which is rendered as a template and run
by bash (its last output line is the XCom). ``@task.sensor``: the function is the sensor's poke
(truthy, or a :class:`PokeReturnValue`), with every sensor argument (``poke_interval``, ``timeout``,
``mode``, ``soft_fail``, ``exponential_backoff``). Arguments may be XComArgs, as for ``@task``.
``@task.virtualenv(requirements=[...])`` / ``@task.external_python(python=...)`` run the function in
another interpreter (:mod:`rabbitrun.authoring.process_python`). ``rabbitrun.authoring.decorators``
attaches them to ``task``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rabbitrun.authoring.baseoperator import BaseOperator, Context
from rabbitrun.authoring.dagcontext import dag_for, unique_label
from rabbitrun.authoring.operators import BashOperator, context_kwargs
from rabbitrun.authoring.process_python import ExternalPythonOperator, PythonVirtualenvOperator
from rabbitrun.authoring.standard_sensors import PythonSensor
from rabbitrun.authoring.xcomarg import XComArg, resolve_xcom_args, xcom_args_in

__all__ = [
    "DecoratedBashOperator",
    "DecoratedSensorOperator",
    "bash",
    "external_python",
    "sensor",
    "variant_decorator",
    "virtualenv",
]


def _depend_on_xcom_args(op: BaseOperator, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    for value in [*args, *kwargs.values()]:
        for arg in xcom_args_in(value):
            op.set_upstream(arg)


class DecoratedBashOperator(BashOperator):
    """A BashOperator whose command is what its function returns, at run time."""

    template_fields = ("env", "cwd")

    def __init__(
        self,
        task_id: str,
        python_callable: Callable[..., Any],
        op_args: Sequence[Any] = (),
        op_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(task_id, bash_command="", **kwargs)
        self.python_callable = python_callable
        self.op_args, self.op_kwargs = list(op_args), dict(op_kwargs or {})
        _depend_on_xcom_args(self, self.op_args, self.op_kwargs)

    def execute(self, context: Context) -> Any:
        args = [resolve_xcom_args(a, context) for a in self.op_args]
        kwargs = {k: resolve_xcom_args(v, context) for k, v in self.op_kwargs.items()}
        command = self.python_callable(*args, **context_kwargs(self.python_callable, context, len(args), kwargs))
        if not isinstance(command, str) or not command.strip():
            raise TypeError("The returned value from the @task.bash callable must be a non-empty string.")
        self.bash_command = self.render_template(command, context)
        return super().execute(context)


class DecoratedSensorOperator(PythonSensor):
    """A PythonSensor made by ``@task.sensor``; its arguments may hold XComArgs."""

    def __init__(self, *, python_callable: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(python_callable=python_callable, **kwargs)
        _depend_on_xcom_args(self, self.op_args, self.op_kwargs)

    def poke(self, context: Context) -> Any:
        self.op_args = [resolve_xcom_args(a, context) for a in self.op_args]
        self.op_kwargs = {k: resolve_xcom_args(v, context) for k, v in self.op_kwargs.items()}
        return super().poke(context)


class _ResolvedArguments:
    """For the interpreter-changing variants: XComArgs in the arguments are upstream tasks, and are
    replaced by their values before the callable runs."""

    op_args: list[Any]
    op_kwargs: dict[str, Any]

    def _resolved(self, context: Context) -> tuple[list[Any], dict[str, Any]]:
        args = [resolve_xcom_args(a, context) for a in self.op_args]
        return args, {k: resolve_xcom_args(v, context) for k, v in self.op_kwargs.items()}


class DecoratedVirtualenvOperator(_ResolvedArguments, PythonVirtualenvOperator):
    """A PythonVirtualenvOperator made by ``@task.virtualenv``."""

    def __init__(self, task_id: str, python_callable: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(task_id, python_callable, **kwargs)
        _depend_on_xcom_args(self, self.op_args, self.op_kwargs)

    def execute(self, context: Context) -> Any:
        return self.execute_callable(*self._resolved(context), context)


class DecoratedExternalPythonOperator(_ResolvedArguments, ExternalPythonOperator):
    """An ExternalPythonOperator made by ``@task.external_python(python=...)``."""

    def __init__(self, task_id: str, python_callable: Callable[..., Any], **kwargs: Any) -> None:
        python = kwargs.pop("python", "")
        super().__init__(task_id, python, python_callable, **kwargs)
        _depend_on_xcom_args(self, self.op_args, self.op_kwargs)

    def execute(self, context: Context) -> Any:
        return self.execute_callable(*self._resolved(context), context)


class _Variant:
    """A decorated function: calling it adds one task of ``operator_class`` to the current DAG."""

    def __init__(
        self, operator_class: Callable[..., BaseOperator], function: Callable[..., Any], kwargs: Mapping[str, Any]
    ):
        self.operator_class, self.function, self.operator_kwargs = operator_class, function, dict(kwargs)
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any, **kwargs: Any) -> XComArg:
        op_kwargs = dict(self.operator_kwargs)
        dag = dag_for(op_kwargs)
        task_id = op_kwargs.pop("task_id", None) or self.function.__name__
        if dag is not None:
            task_id = unique_label(dag, task_id, op_kwargs.get("task_group"))
        operator = self.operator_class(
            task_id=task_id, python_callable=self.function, op_args=args, op_kwargs=kwargs, **op_kwargs
        )
        return XComArg(operator)

    def override(self, **operator_kwargs: Any) -> _Variant:
        return _Variant(self.operator_class, self.function, {**self.operator_kwargs, **operator_kwargs})


def variant_decorator(operator_class: Callable[..., BaseOperator]) -> Callable[..., Any]:
    def decorator(python_callable: Callable[..., Any] | None = None, /, **operator_kwargs: Any) -> Any:
        def decorate(function: Callable[..., Any]) -> _Variant:
            return _Variant(operator_class, function, operator_kwargs)

        return decorate(python_callable) if python_callable is not None else decorate

    return decorator


bash = variant_decorator(DecoratedBashOperator)
sensor = variant_decorator(DecoratedSensorOperator)
virtualenv = variant_decorator(DecoratedVirtualenvOperator)
external_python = variant_decorator(DecoratedExternalPythonOperator)
