"""DAG rows as the operator manages them: whether the scheduler registered a DAG, pausing it,
deleting it with all its rows."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, delete
from sqlalchemy.orm import Session

from rabbitrun.errors import DagNotFound
from rabbitrun.models.tables import DagModel, DagRun, TaskAttempt, TaskInstance, TaskReschedule, XComRow


def is_registered(session: Session, dag_id: str) -> bool:
    """Whether the scheduler has registered the DAG (it has a row)."""
    return session.get(DagModel, dag_id) is not None


def set_paused(session: Session, dag_id: str, paused: bool, *, fileloc: str | None = None) -> bool:
    """Set the DAG's ``is_paused`` and commit; a DAG with no row gets one defined in ``fileloc``.
    False, with nothing written, for a DAG with no row when no ``fileloc`` is given."""
    row = session.get(DagModel, dag_id)
    if row is None:
        if fileloc is None:
            return False
        row = DagModel(dag_id=dag_id, fileloc=fileloc)
        session.add(row)
    row.is_paused = paused
    session.commit()
    return True


def delete_dag(session: Session, dag_id: str) -> int:
    """Delete a DAG's runs, task instances, attempts and XComs and its row; returns how many runs
    went. DagNotFound (nothing deleted) when it has neither runs nor a row. Commits."""
    runs = cast(CursorResult[Any], session.execute(delete(DagRun).where(DagRun.dag_id == dag_id))).rowcount
    for model in (TaskInstance, TaskAttempt, TaskReschedule, XComRow):
        session.execute(delete(model).where(model.dag_id == dag_id))
    found = cast(CursorResult[Any], session.execute(delete(DagModel).where(DagModel.dag_id == dag_id))).rowcount
    if not runs and not found:
        raise DagNotFound(dag_id)
    session.commit()
    return int(runs)
