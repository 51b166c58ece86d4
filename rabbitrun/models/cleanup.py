"""Deleting old rows for `rabbitrun db clean`: ended attempts and finished DAG runs before a date
(XComs clean themselves, :func:`rabbitrun.models.xcom.clean`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from rabbitrun.models.tables import DagRun, TaskAttempt


def clean_task_attempts(session: Session, before: datetime, *, dry_run: bool) -> int:
    """Delete attempts that ended before ``before`` (counted, not deleted, on a dry run)."""
    return _clean(session, TaskAttempt, TaskAttempt.end_date < before, dry_run)


def clean_dag_runs(session: Session, before: datetime, *, dry_run: bool) -> int:
    """Delete success/failed runs that ended before ``before`` (counted, not deleted, on a dry run)."""
    return _clean(session, DagRun, (DagRun.end_date < before) & DagRun.state.in_(("success", "failed")), dry_run)


def _clean(session: Session, model: Any, condition: Any, dry_run: bool) -> int:
    count = int(session.execute(select(func.count()).select_from(model).where(condition)).scalar_one())
    if not dry_run:
        session.execute(delete(model).where(condition))
        session.commit()
    return count
