"""XCom storage: JSON-safe values by default, pickle only when enabled, with a size limit.

Values carry a type tag (``value_type``) so a reader knows how to decode them
without guessing.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rabbitrun.errors import XComError
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models.base import utcnow
from rabbitrun.models.tables import XComRow

RETURN_VALUE = "return_value"


def serialize(value: Any, *, allow_pickle: bool) -> tuple[bytes, str]:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode(), "json"
    except (TypeError, ValueError) as exc:
        if allow_pickle:
            return pickle.dumps(value), "pickle"
        raise XComError(
            f"XCom value of type {type(value).__name__} is not JSON-serialisable ({exc}); return JSON-safe "
            "values or set RABBITRUN__CORE__ENABLE_XCOM_PICKLING=true"
        ) from exc


def deserialize(data: bytes, value_type: str, *, allow_pickle: bool) -> Any:
    if value_type == "json":
        return json.loads(data)
    if value_type == "pickle":
        if not allow_pickle:
            raise XComError("XCom value is pickled but pickling is disabled (core.enable_xcom_pickling)")
        return pickle.loads(data)  # noqa: S301 - opt-in by configuration
    raise XComError(f"unknown XCom value type {value_type!r}")


def set_xcom(
    session: Session, ti: TaskInstanceKey, key: str, value: Any, *, allow_pickle: bool, max_bytes: int
) -> None:
    """Insert or replace one XCom of a task instance (no commit)."""
    data, value_type = serialize(value, allow_pickle=allow_pickle)
    if max_bytes and len(data) > max_bytes:
        raise XComError(
            f"XCom {key!r} of task {ti.dag_id}.{ti.task_id} is {len(data)} bytes, over the "
            f"max_xcom_size limit of {max_bytes} bytes"
        )
    row = session.execute(
        select(XComRow).where(
            XComRow.dag_id == ti.dag_id, XComRow.run_id == ti.run_id, XComRow.task_id == ti.task_id,
            XComRow.map_index == ti.map_index, XComRow.key == key,
        )
    ).scalar_one_or_none()
    if row is None:
        session.add(XComRow(dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, map_index=ti.map_index,
                            key=key, value=data, value_type=value_type, timestamp=utcnow()))
    else:
        row.value, row.value_type, row.timestamp = data, value_type, utcnow()


def get_xcoms(
    session: Session, dag_id: str, run_id: str, task_ids: Sequence[str], key: str, *, allow_pickle: bool
) -> dict[tuple[str, int], Any]:
    """Values by (task_id, map_index) for the given task ids and key."""
    rows = session.execute(
        select(XComRow.task_id, XComRow.map_index, XComRow.value, XComRow.value_type).where(
            XComRow.dag_id == dag_id, XComRow.run_id == run_id, XComRow.task_id.in_(list(task_ids)),
            XComRow.key == key,
        )
    ).all()
    return {(r[0], r[1]): deserialize(r[2], r[3], allow_pickle=allow_pickle) for r in rows}
