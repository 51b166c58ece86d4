"""Jinja templating of operator fields (``template_fields``), rendered just before ``execute``.

Templates see the task's context: ``{{ ds }}``, ``{{ ts }}``, ``{{ run_id }}``, ``{{ params.x }}``,
``{{ var.value.x }}``, ``{{ var.json.x.key }}``, ``{{ conn.my_db.host }}``,
``{{ ti.xcom_pull(task_ids='extract') }}``, ``{{ macros.ds_add(ds, 1) }}``, and the DAG's
``user_defined_macros``; its ``user_defined_filters`` are filters. Strings are rendered, and strings
inside lists, tuples and dicts, recursively; other values are left as they are. A string field that
ends with one of the operator's ``template_ext`` (``.sh``, ``.sql``, ...) names a template file, looked
up in the DAG's ``template_searchpath`` and then the DAG file's folder. With the DAG's
``render_template_as_native_obj`` a field renders to a Python object (``"{{ [1, 2] }}"`` -> ``[1, 2]``)
instead of a string. The rendered copy of the operator is what runs, so retries render again from
the original.
"""

from __future__ import annotations

import copy
import os
import shlex
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import jinja2
import jinja2.nativetypes

from rabbitrun.errors import DagDefinitionError

__all__ = ["Templated", "environment", "render", "rendered_copy", "template_context"]

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
# `{{ params.x | shell_quote }}`: a value from dag_run.conf inside bash_command stays one word, never
# shell syntax (issue 17, finding 7). Passing it through BashOperator(env=...) is safer still.
_ENV.filters["shell_quote"] = lambda value: shlex.quote(str(value))


@runtime_checkable
class _Pulled(Protocol):
    """An XComArg, known by its shape: rabbitrun.authoring.xcomarg builds on BaseOperator, which
    builds on this module, so it cannot be imported here. A task (``as_operators``) with a value
    pulled at run time (``resolve``): paths and operators have one of the two, never both."""

    def as_operators(self) -> Any: ...

    def resolve(self, context: Mapping[str, Any]) -> Any: ...


#: the attribute where the runner leaves the attempt's environment on the operator copy it runs
ENV_ATTRIBUTE = "_rabbitrun_jinja_env"


class _Namespace:
    """``var.value.x`` in templates: attribute access onto the runner's mapping-style accessors."""

    def __init__(self, mapping: Mapping[str, Any]) -> None:
        self._mapping = mapping

    def __getattr__(self, name: str) -> Any:
        try:
            return self._mapping[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


def environment(dag: Any, dag_folder: str | os.PathLike[str] | None = None) -> jinja2.Environment:
    """The Jinja environment of ``dag``'s templates: its search path, filters, native rendering.

    The DAG is read with ``getattr``: a DAG without these arguments gets the defaults.
    """
    searchpath = getattr(dag, "template_searchpath", None) or []
    paths = [searchpath] if isinstance(searchpath, (str, os.PathLike)) else list(searchpath)
    if dag_folder is not None:
        paths.append(dag_folder)
    filters = getattr(dag, "user_defined_filters", None) or {}
    native = bool(getattr(dag, "render_template_as_native_obj", False))
    if not paths and not filters and not native:
        return _ENV
    env_class = jinja2.nativetypes.NativeEnvironment if native else jinja2.Environment
    env = env_class(
        loader=jinja2.FileSystemLoader([os.fspath(p) for p in paths]) if paths else None,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        cache_size=0,
    )
    env.filters.update(filters)
    return env


def template_context(context: Mapping[str, Any], dag: Any = None) -> dict[str, Any]:
    """What templates see: the context, ``var`` with attribute access, the DAG's macros."""
    out = dict(context)
    if isinstance(context.get("var"), Mapping):
        out["var"] = _Namespace(context["var"])
    out.update(getattr(dag if dag is not None else context.get("dag"), "user_defined_macros", None) or {})
    return out


def render(
    value: Any,
    context: Mapping[str, Any],
    where: str,
    env: jinja2.Environment = _ENV,
    template_ext: Collection[str] = (),
) -> Any:
    """``value`` rendered against ``context`` (which :func:`template_context` prepared), strings in
    lists, tuples and dicts too; an XComArg becomes the value it pulls, not rendered again (as in
    Airflow)."""
    if isinstance(value, _Pulled):
        return value.resolve(context)
    if isinstance(value, str):
        try:
            if template_ext and env.loader is not None and value.endswith(tuple(template_ext)):
                return env.get_template(value).render(**context)
            if "{{" not in value and "{%" not in value:
                return value
            return env.from_string(value).render(**context)
        except jinja2.TemplateNotFound as exc:
            searched = getattr(env.loader, "searchpath", [])
            raise DagDefinitionError(
                f"cannot render {where}: template file {value!r} not found (searched {searched}; "
                "a field ending in a template extension names a file)"
            ) from exc
        except jinja2.TemplateError as exc:
            raise DagDefinitionError(f"cannot render {where}: {type(exc).__name__}: {exc}") from exc
    if isinstance(value, list | tuple):
        return type(value)(render(v, context, where, env, template_ext) for v in value)
    if isinstance(value, dict):
        return {k: render(v, context, where, env, template_ext) for k, v in value.items()}
    return value


def rendered_copy(task: Any, context: Mapping[str, Any], env: jinja2.Environment | None = None) -> Any:
    """A shallow copy of ``task`` with every template field rendered against ``context``."""
    env = env if env is not None else environment(getattr(task, "dag", None))
    rendered = copy.copy(task)
    setattr(rendered, ENV_ATTRIBUTE, env)  # for render_template calls inside execute
    fields = getattr(task, "template_fields", ())
    if not fields:
        return rendered
    values = template_context(context, getattr(task, "dag", None))
    exts = tuple(getattr(task, "template_ext", ()) or ())
    for name in fields:
        setattr(rendered, name, render(getattr(task, name), values, f"{task.task_id}.{name}", env, exts))
    return rendered


class Templated:
    """Airflow's templating API on operators: ``template_ext``, ``template_fields_renderers``,
    ``render_template`` and ``get_template_env`` (a base class of BaseOperator)."""

    template_fields: Sequence[str] = ()
    #: a string field ending with one of these is the name of a template file
    template_ext: Sequence[str] = ()
    #: how a UI shows each field (``{"bash_command": "bash"}``); kept for Airflow compatibility
    template_fields_renderers: dict[str, str] = {}

    def get_template_env(self, dag: Any = None) -> jinja2.Environment:
        env = getattr(self, ENV_ATTRIBUTE, None)
        if isinstance(env, jinja2.Environment) and dag is None:
            return env
        return environment(dag if dag is not None else getattr(self, "dag", None))

    def render_template(
        self,
        content: Any,
        context: Mapping[str, Any],
        jinja_env: jinja2.Environment | None = None,
        seen_oids: set[int] | None = None,
    ) -> Any:
        """Render ``content`` (a string, file name, or a list/tuple/dict of them) with ``context``."""
        env = jinja_env if jinja_env is not None else self.get_template_env()
        where = f"{getattr(self, 'task_id', type(self).__name__)}.render_template"
        return render(content, template_context(context, getattr(self, "dag", None)), where, env, self.template_ext)


def dag_folder_of(file_path: str | os.PathLike[str] | None) -> Path | None:
    """The folder of a DAG file: where its template files are looked up last."""
    return None if not file_path else Path(file_path).parent
