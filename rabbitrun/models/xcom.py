"""XCom storage: the rows of XCom values in the metadata DB, with a size limit.

How a value is encoded (type-tagged JSON, pickle only when enabled) and the backends live in
:mod:`rabbitrun.models.xcom_values`, which a task process imports without SQLAlchemy; their
names are re-exported here for the DB's callers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from rabbitrun.errors import XComError
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models.base import utcnow
from rabbitrun.models.tables import XComRow
from rabbitrun.models.xcom_values import (
    REF,
    RETURN_VALUE,
    DatabaseXComBackend,
    XComBackend,
    deserialize,
    load_backend,
    load_backend_without_pickle,
    serialize,
    too_big,
)

__all__ = [
    "REF",
    "RETURN_VALUE",
    "DatabaseXComBackend",
    "XComBackend",
    "clean",
    "deserialize",
    "get_rows",
    "get_xcoms",
    "load_backend",
    "load_backend_without_pickle",
    "put_row",
    "serialize",
    "set_xcom",
    "too_big",
]


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
    if not allow_pickle and any(value_type == "pickle" for _, value_type in rows.values()):
        raise XComError(f"XCom {key!r} of {', '.join(task_ids)} is pickled; it is not unpickled here")
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


def clean(session: Session, before: datetime, *, dry_run: bool, files_folder: Path | None = None) -> int:
    """Delete XComs older than ``before`` (rows counted, not deleted, on a dry run).

    Rows of type ``ref`` (a backend kept the value elsewhere) whose reference is a
    JSON object with a ``path`` lose that file too, so cleaning frees the space, but only a file
    that resolves inside ``files_folder`` (the file backend's own folder): a planted row naming
    ``/home/me/.ssh/id_rsa`` deletes nothing (issue 17, finding 10).
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
            if files_folder is not None:
                _remove_ref_file(ref, files_folder)
    return count


def _remove_ref_file(ref: bytes, folder: Path) -> None:
    try:
        path = json.loads(ref).get("path")
    except (ValueError, AttributeError):
        return
    if not isinstance(path, str):
        return
    resolved, base = Path(path).resolve(), folder.resolve()
    if not resolved.is_relative_to(base) or resolved == base:
        logging.getLogger("rabbitrun.xcom").warning("not deleting %s: outside the XCom files folder %s", path, base)
        return
    resolved.unlink(missing_ok=True)
