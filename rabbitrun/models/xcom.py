"""XCom storage: JSON-safe values by default, pickle only when enabled, with a size limit.

Values carry a type tag (``value_type``) so a reader knows how to decode them
without guessing.
"""

from __future__ import annotations

import base64
import importlib
import json
import pickle
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from rabbitrun.errors import ConfigError, XComError
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models.base import utcnow
from rabbitrun.models.tables import XComRow
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


def set_xcom(
    session: Session,
    ti: TaskInstanceKey,
    key: str,
    value: Any,
    *,
    allow_pickle: bool,
    max_bytes: int,
    backend: XComBackend | None = None,
) -> None:
    """Insert or replace one XCom of a task instance (no commit)."""
    data, value_type = (backend or DatabaseXComBackend(allow_pickle)).store(value, key=key, ti=ti)
    put_row(session, ti, key, data, value_type, max_bytes=max_bytes)


def too_big(ti: TaskInstanceKey, key: str, data: bytes | tuple[bytes, str], max_bytes: int) -> str:
    """Why an XCom row over ``core.max_xcom_size`` is refused."""
    size = len(data[0] if isinstance(data, tuple) else data)
    return (
        f"XCom {key!r} of task {ti.dag_id}.{ti.task_id} is {size} bytes, over the "
        f"max_xcom_size limit of {max_bytes} bytes"
    )


def put_row(session: Session, ti: TaskInstanceKey, key: str, data: bytes, value_type: str, *, max_bytes: int) -> None:
    """Insert or replace one XCom row already stored by a backend (no commit).

    The worker writes what its task process stored: the value is serialised where the task runs
    (its backend may keep it elsewhere), the row and its size limit are the worker's.
    """
    if max_bytes and len(data) > max_bytes:
        raise XComError(too_big(ti, key, data, max_bytes))
    row = session.execute(
        select(XComRow).where(
            XComRow.dag_id == ti.dag_id,
            XComRow.run_id == ti.run_id,
            XComRow.task_id == ti.task_id,
            XComRow.map_index == ti.map_index,
            XComRow.key == key,
        )
    ).scalar_one_or_none()
    if row is None:
        session.add(
            XComRow(
                dag_id=ti.dag_id,
                task_id=ti.task_id,
                run_id=ti.run_id,
                map_index=ti.map_index,
                key=key,
                value=data,
                value_type=value_type,
                timestamp=utcnow(),
            )
        )
    else:
        row.value, row.value_type, row.timestamp = data, value_type, utcnow()


def get_xcoms(
    session: Session,
    dag_id: str,
    run_id: str,
    task_ids: Sequence[str],
    key: str,
    *,
    allow_pickle: bool,
    backend: XComBackend | None = None,
) -> dict[tuple[str, int], Any]:
    """Values by (task_id, map_index) for the given task ids and key."""
    loader = backend or DatabaseXComBackend(allow_pickle)
    rows = get_rows(session, dag_id, run_id, task_ids, key)
    return {where: loader.load(data, value_type) for where, (data, value_type) in rows.items()}


def get_rows(
    session: Session, dag_id: str, run_id: str, task_ids: Sequence[str], key: str
) -> dict[tuple[str, int], tuple[bytes, str]]:
    """The stored rows (bytes, value type) by (task_id, map_index): what a worker hands its task process."""
    rows = session.execute(
        select(XComRow.task_id, XComRow.map_index, XComRow.value, XComRow.value_type).where(
            XComRow.dag_id == dag_id,
            XComRow.run_id == run_id,
            XComRow.task_id.in_(list(task_ids)),
            XComRow.key == key,
        )
    ).all()
    return {(r[0], r[1]): (bytes(r[2]), r[3]) for r in rows}


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


def clean(session: Session, before: datetime, *, dry_run: bool) -> int:
    """Delete XComs older than ``before`` (rows counted, not deleted, on a dry run).

    Rows of type ``ref`` (a backend kept the value elsewhere) whose reference is a
    JSON object with a ``path`` lose that file too, so cleaning frees the space.
    """
    query = select(func.count()).select_from(XComRow).where(XComRow.timestamp < before)
    count = int(session.execute(query).scalar_one())
    if not dry_run:
        refs = (
            session.execute(select(XComRow.value).where(XComRow.timestamp < before, XComRow.value_type == REF))
            .scalars()
            .all()
        )
        session.execute(delete(XComRow).where(XComRow.timestamp < before))
        session.commit()
        for ref in refs:  # after the commit: a failed delete must not lose the value of a kept row
            _remove_ref_file(ref)
    return count


def _remove_ref_file(ref: bytes) -> None:
    try:
        path = json.loads(ref).get("path")
    except (ValueError, AttributeError):
        return
    if isinstance(path, str):
        Path(path).unlink(missing_ok=True)
