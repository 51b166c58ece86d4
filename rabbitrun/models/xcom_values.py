"""XCom values without the DB: their encoding (type-tagged JSON, pickle only when enabled), the
backends that store them, and the size limit's message.

A task process encodes and decodes values and runs the configured backend, but holds no DB
(DESIGN "Task process boundary"): this module imports no SQLAlchemy, so neither does the zygote.
:mod:`rabbitrun.models.xcom` keeps the rows and re-exports these names.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import pickle
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from rabbitrun.errors import ConfigError, XComError
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.settings import Settings

RETURN_VALUE = "return_value"
REF = "ref"  # value_type of a row whose value a backend stores elsewhere (see FileXComBackend)


_TAG = "__rabbitrun_type__"


def _tag(value: Any) -> Any:
    """JSON-safe form that keeps types JSON would lose (tuple, set, datetime, date, timedelta, bytes)."""
    if isinstance(value, tuple):
        return {_TAG: "tuple", "v": [_tag(v) for v in value]}
    if isinstance(value, set | frozenset):
        return {_TAG: "set", "v": [_tag(v) for v in sorted(value, key=repr)]}
    if isinstance(value, datetime):
        return {_TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, date):
        return {_TAG: "date", "v": value.isoformat()}
    if isinstance(value, timedelta):
        return {_TAG: "timedelta", "v": value.total_seconds()}
    if isinstance(value, bytes):
        return {_TAG: "bytes", "v": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return [_tag(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("dict keys must be strings")
        if _TAG in value:  # a user dict that looks like a tag: escape it rather than misread it
            return {_TAG: "dict", "v": [[k, _tag(v)] for k, v in value.items()]}
        return {k: _tag(v) for k, v in value.items()}
    return value


def _untag(value: Any) -> Any:
    if isinstance(value, list):
        return [_untag(v) for v in value]
    if isinstance(value, dict):
        kind = value.get(_TAG)
        if kind is None:
            return {k: _untag(v) for k, v in value.items()}
        raw = value["v"]
        decoders: dict[str, Callable[[], Any]] = {
            "tuple": lambda: tuple(_untag(v) for v in raw),
            "set": lambda: {_untag(v) for v in raw},
            "datetime": lambda: datetime.fromisoformat(raw),
            "date": lambda: date.fromisoformat(raw),
            "timedelta": lambda: timedelta(seconds=raw),
            "bytes": lambda: base64.b64decode(raw),
            "dict": lambda: {k: _untag(v) for k, v in raw},
        }
        if kind not in decoders:
            raise XComError(f"unknown XCom type tag {kind!r}")
        return decoders[kind]()
    return value


def serialize(value: Any, *, allow_pickle: bool) -> tuple[bytes, str]:
    try:
        return json.dumps(_tag(value), separators=(",", ":"), allow_nan=False).encode(), "json"
    except (TypeError, ValueError) as exc:
        if allow_pickle:
            return pickle.dumps(value), "pickle"
        raise XComError(
            f"XCom value of type {type(value).__name__} is not JSON-serialisable ({exc}); return JSON-safe "
            "values or set RABBITRUN__CORE__ENABLE_XCOM_PICKLING=true"
        ) from exc


def deserialize(data: bytes, value_type: str, *, allow_pickle: bool) -> Any:
    if value_type == "json":
        return _untag(json.loads(data))
    if value_type == "pickle":
        if not allow_pickle:
            raise XComError("XCom value is pickled but pickling is disabled (core.enable_xcom_pickling)")
        return pickle.loads(data)  # noqa: S301 - opt-in by configuration
    raise XComError(f"unknown XCom value type {value_type!r}")


class XComBackend(Protocol):
    """Where XCom values live. ``store`` returns the bytes for the DB row and their type tag;
    ``load`` turns a row back into the value. Configure with ``[core] xcom_backend``."""

    def store(self, value: Any, *, key: str, ti: TaskInstanceKey) -> tuple[bytes, str]: ...

    def load(self, data: bytes, value_type: str) -> Any: ...


class DatabaseXComBackend:
    """The default: the value itself, type-tagged JSON (pickle only when enabled), in the DB row."""

    def __init__(self, allow_pickle: bool) -> None:
        self.allow_pickle = allow_pickle

    def store(self, value: Any, *, key: str, ti: TaskInstanceKey) -> tuple[bytes, str]:
        return serialize(value, allow_pickle=self.allow_pickle)

    def load(self, data: bytes, value_type: str) -> Any:
        return deserialize(data, value_type, allow_pickle=self.allow_pickle)


def too_big(ti: TaskInstanceKey, key: str, data: bytes | tuple[bytes, str], max_bytes: int) -> str:
    """Why an XCom row over ``core.max_xcom_size`` is refused."""
    size = len(data[0] if isinstance(data, tuple) else data)
    return (
        f"XCom {key!r} of task {ti.dag_id}.{ti.task_id} is {size} bytes, over the "
        f"max_xcom_size limit of {max_bytes} bytes"
    )


def load_backend(dotted_path: str, settings: Settings) -> XComBackend:
    """Instantiate ``[core] xcom_backend`` ("package.module.Class"); empty means the DB backend."""
    if not dotted_path:
        return DatabaseXComBackend(settings.core.enable_xcom_pickling)
    module_name, _, class_name = dotted_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"[core] xcom_backend {dotted_path!r} cannot be imported: {exc}", key="core.xcom_backend"
        ) from exc
    backend: XComBackend = cls(settings)
    return backend


def load_backend_without_pickle(dotted_path: str, settings: Settings) -> XComBackend:
    """``[core] xcom_backend`` as the scheduler must use it: with pickling off whatever the setting
    says, so a task's XCom can never run code in the scheduler (issue 17, finding 9)."""
    core = dataclasses.replace(settings.core, enable_xcom_pickling=False)
    return load_backend(dotted_path, dataclasses.replace(settings, core=core))
