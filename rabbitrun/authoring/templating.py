"""Jinja templating of operator fields (``template_fields``), rendered just before ``execute``.

Templates see the task's context: ``{{ ds }}``, ``{{ ts }}``, ``{{ run_id }}``, ``{{ params.x }}``,
``{{ var.value.x }}``, ``{{ var.json.x.key }}``, ``{{ conn.my_db.host }}``,
``{{ ti.xcom_pull(task_ids='extract') }}``, ``{{ data_interval_start }}``. Strings are rendered, and
strings inside lists, tuples and dicts, recursively; other values are left as they are. The
rendered copy of the operator is what runs, so retries render again from the original.
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Mapping
from typing import Any

import jinja2

from rabbitrun.errors import DagDefinitionError

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
# `{{ params.x | shell_quote }}`: a value from dag_run.conf inside bash_command stays one word, never
# shell syntax (issue 17, finding 7). Passing it through BashOperator(env=...) is safer still.
_ENV.filters["shell_quote"] = lambda value: shlex.quote(str(value))


class _Namespace:
    """``var.value.x`` in templates: attribute access onto the runner's mapping-style accessors."""

    def __init__(self, mapping: Mapping[str, Any]) -> None:
        self._mapping = mapping

    def __getattr__(self, name: str) -> Any:
        try:
            return self._mapping[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


def template_context(context: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(context)
    if isinstance(context.get("var"), Mapping):
        out["var"] = _Namespace(context["var"])
    return out


def render(value: Any, context: Mapping[str, Any], where: str) -> Any:
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        try:
            return _ENV.from_string(value).render(**context)
        except jinja2.TemplateError as exc:
            raise DagDefinitionError(f"cannot render {where}: {type(exc).__name__}: {exc}") from exc
    if isinstance(value, list | tuple):
        return type(value)(render(v, context, where) for v in value)
    if isinstance(value, dict):
        return {k: render(v, context, where) for k, v in value.items()}
    return value


def rendered_copy(task: Any, context: Mapping[str, Any]) -> Any:
    """A shallow copy of ``task`` with every template field rendered against ``context``."""
    fields = getattr(task, "template_fields", ())
    if not fields:
        return task
    rendered = copy.copy(task)
    env = template_context(context)
    for name in fields:
        setattr(rendered, name, render(getattr(task, name), env, f"{task.task_id}.{name}"))
    return rendered
