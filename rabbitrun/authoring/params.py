"""DAG and task params as Airflow defines them: ``Param`` (a default plus a JSON Schema),
``ParamsDict``, and the resolution that turns them into the plain values tasks see.

``DAG(params={"n": Param(3, type="integer", minimum=1)})``: a run's ``conf`` overrides a param's
default and the result must satisfy its schema; a violation refuses the trigger (and fails a
task that would run with it) instead of reaching the task. ``context["params"]`` holds plain
values, never Param objects. Validation is the ``jsonschema`` package: JSON Schema is what
Airflow's ``Param(**kwargs)`` passes through, so a hand-written subset would differ from it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from rabbitrun.errors import DagDefinitionError, ParamValidationError

__all__ = ["NOTSET", "Param", "ParamsDict", "resolve_params"]


class _NotSet:
    """Marks a Param without a default (distinct from a default of None)."""

    def __repr__(self) -> str:
        return "NOTSET"


NOTSET: Any = _NotSet()


class Param:
    """A param's default and its JSON Schema: ``Param(5, type="integer", minimum=0, description=...)``."""

    def __init__(
        self,
        default: Any = NOTSET,
        description: str | None = None,
        *,
        title: str | None = None,
        **schema: Any,
    ) -> None:
        self.value = default
        self.description = description
        self.schema: dict[str, Any] = dict(schema)
        if description is not None:
            self.schema.setdefault("description", description)
        if title is not None:
            self.schema.setdefault("title", title)
        _check_schema(self.schema)

    def __repr__(self) -> str:
        return f"Param({self.value!r}, schema={self.schema!r})"

    @property
    def has_value(self) -> bool:
        return self.value is not NOTSET

    def resolve(self, value: Any = NOTSET, *, name: str = "param", suppress_exception: bool = False) -> Any:
        """``value`` (or the default) checked against the schema; ParamValidationError if it fails."""
        final = self.value if value is NOTSET else value
        if final is NOTSET:
            if suppress_exception:
                return None
            raise ParamValidationError(name, "no value given and the param has no default")
        try:
            _validate(final, self.schema)
        except ParamValidationError as exc:
            if suppress_exception:
                return None
            raise ParamValidationError(name, exc.reason) from None
        return copy.deepcopy(final)

    def dump(self) -> dict[str, Any]:
        return {
            "value": None if self.value is NOTSET else self.value,
            "description": self.description,
            "schema": self.schema,
        }


class ParamsDict(MutableMapping[str, Any]):
    """A mapping of names to Params (plain values become ``Param(value)``); ``validate()`` resolves all."""

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self._params: dict[str, Param] = {}
        for key, value in (params or {}).items():
            self[key] = value

    def __setitem__(self, key: str, value: Any) -> None:
        self._params[key] = value if isinstance(value, Param) else Param(value)

    def __getitem__(self, key: str) -> Any:
        """The param's value (its default), as Airflow's ParamsDict returns."""
        return self._params[key].value

    def __delitem__(self, key: str) -> None:
        del self._params[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        return f"ParamsDict({self._params!r})"

    def get_param(self, key: str) -> Param:
        return self._params[key]

    def validate(self) -> dict[str, Any]:
        return {key: param.resolve(name=key) for key, param in self._params.items()}


def resolve_params(
    params: Mapping[str, Any], conf: Mapping[str, Any] | None = None, *, strict: bool = True
) -> dict[str, Any]:
    """Plain values for a run: each param's default overridden by ``conf``, checked against its
    schema; conf keys that are not params pass through as they are (as in Airflow).

    ``strict=False`` (callbacks, which must run whatever the conf was) keeps invalid values as given.
    """
    conf = dict(conf or {})
    out: dict[str, Any] = {}
    for key in params:
        raw = params.get_param(key) if isinstance(params, ParamsDict) else params[key]
        if isinstance(raw, Param):
            given = conf.pop(key, NOTSET)
            if strict:
                out[key] = raw.resolve(given, name=key)
            else:
                value = raw.value if given is NOTSET else given
                out[key] = None if value is NOTSET else value
        else:
            out[key] = conf.pop(key, raw)
    out.update(conf)
    return out


def _check_schema(schema: Mapping[str, Any]) -> None:
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(dict(schema))
    except jsonschema.SchemaError as exc:
        raise DagDefinitionError(f"invalid Param schema: {exc.message}") from None


def _validate(value: Any, schema: Mapping[str, Any]) -> None:
    import jsonschema

    try:
        jsonschema.validate(value, dict(schema), format_checker=jsonschema.FormatChecker())
    except jsonschema.ValidationError as exc:
        raise ParamValidationError("param", exc.message) from None
