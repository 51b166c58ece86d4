"""Claim, heartbeat and finish task attempts with compare-and-set updates.

Every transition here is one conditional UPDATE on the task instance row that
names the expected state and ``try_number``: whoever loses the race sees
rowcount 0 and does nothing (DESIGN rule 2). Both the task process (claim,
finish) and the worker parent (heartbeat, finish of a killed child) use these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models.base import utcnow
from rabbitrun.models.tables import DagRun, TaskAttempt, TaskInstance, XComRow
from rabbitrun.states import CLAIMABLE_STATES, TaskState


def _pk(key: TaskInstanceKey) -> tuple[object, ...]:
    return (
        TaskInstance.dag_id == key.dag_id,
        TaskInstance.task_id == key.task_id,
        TaskInstance.run_id == key.run_id,
        TaskInstance.map_index == key.map_index,
    )


def get_ti(session: Session, key: TaskInstanceKey) -> TaskInstance | None:
    return session.get(TaskInstance, (key.dag_id, key.task_id, key.run_id, key.map_index))


@dataclass(frozen=True, slots=True)
class Claim:
    """Outcome of a claim: won (with what the attempt needs to run), or lost with the state
    that made it lose."""

    won: bool
    state: str | None  # current state when lost; None when the row does not exist
    try_number: int | None = None
    max_tries: int = 0
    queue: str = ""
    run: DagRun | None = None


def claim(session: Session, key: TaskInstanceKey, *, hostname: str, pid: int, now: datetime,
          commit: bool = True) -> Claim:
    """QUEUED -> RUNNING for exactly this try_number, in one statement; commits.

    The same transaction reads the DAG run (for the task's context) and removes
    the task instance's previous XComs, so a cleared and re-run task replaces
    them instead of appending duplicates: one round trip of work, one commit.
    """
    won = session.execute(
        update(TaskInstance)
        .where(*_pk(key), TaskInstance.try_number == key.try_number,
               # ... or already ours: a retry after a commit whose answer was lost wins again
               or_(TaskInstance.state.in_([s.value for s in CLAIMABLE_STATES]),
                   and_(TaskInstance.state == TaskState.RUNNING.value, TaskInstance.pid == pid,
                        TaskInstance.hostname == hostname, TaskInstance.start_date == now)))
        .values(state=TaskState.RUNNING.value, start_date=now, end_date=None, duration=None,
                hostname=hostname, pid=pid, last_heartbeat_at=now, reason=None, next_retry_at=None)
        .returning(TaskInstance.max_tries, TaskInstance.queue)
        .execution_options(synchronize_session=False)
    ).first()
    if won is not None:
        run = session.execute(
            select(DagRun).where(DagRun.dag_id == key.dag_id, DagRun.run_id == key.run_id)
        ).scalar_one()
        session.execute(
            delete(XComRow).where(
                XComRow.dag_id == key.dag_id, XComRow.task_id == key.task_id,
                XComRow.run_id == key.run_id, XComRow.map_index == key.map_index,
            )
        )
        if commit:
            session.commit()
        return Claim(True, TaskState.RUNNING.value, key.try_number, won[0], won[1], run)
    if commit:
        session.rollback()
    row = session.execute(
        select(TaskInstance.state, TaskInstance.try_number).where(*_pk(key))
    ).first()
    return Claim(False, row[0] if row else None, row[1] if row else None)


def heartbeat(session: Session, envelope_ids: list[str], now: datetime) -> int:
    """Keep claimed attempts alive; the scheduler treats a stale heartbeat as a zombie."""
    if not envelope_ids:
        return 0
    result = session.execute(
        update(TaskInstance)
        .where(TaskInstance.envelope_id.in_(envelope_ids), TaskInstance.state == TaskState.RUNNING.value)
        .values(last_heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


def reschedule(session: Session, key: TaskInstanceKey, envelope_id: str, reason: str) -> bool:
    """QUEUED -> SCHEDULED for this envelope: no message carries it any more, so the scheduler
    publishes it again (same try). False when its state moved on meanwhile. Commits."""
    result = session.execute(
        update(TaskInstance)
        .where(*_pk(key), TaskInstance.try_number == key.try_number, TaskInstance.envelope_id == envelope_id,
               TaskInstance.state == TaskState.QUEUED.value)
        .values(state=TaskState.SCHEDULED.value, reason=reason)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Finish:
    """The final word on one attempt, decided by the runner or the worker parent."""

    state: TaskState
    ended_at: datetime
    reason: str | None = None
    next_retry_at: datetime | None = None


def finish(session: Session, key: TaskInstanceKey, outcome: Finish, *, expect: TaskState = TaskState.RUNNING,
           started_at: datetime | None = None, commit: bool = True) -> bool:
    """RUNNING -> final state for this try_number; records the attempt row. Commits.

    Returns False when the attempt was already decided elsewhere (e.g. the
    scheduler failed it as a zombie): the first decision stands. Whoever knows
    when the attempt started (the runner) passes ``started_at`` and saves a read.
    """
    if started_at is not None:
        row = session.execute(
            update(TaskInstance)
            .where(*_pk(key), TaskInstance.try_number == key.try_number, TaskInstance.state == expect.value)
            .values(state=outcome.state.value, end_date=outcome.ended_at, reason=outcome.reason,
                    duration=max(0.0, (outcome.ended_at - started_at).total_seconds()),
                    next_retry_at=outcome.next_retry_at)
            .returning(TaskInstance.hostname, TaskInstance.pid)
            .execution_options(synchronize_session=False)
        ).first()
        if row is None:
            session.rollback()
            return False
        record_attempt(session, key, outcome.state.value, started_at, outcome.ended_at, row[0], row[1],
                       outcome.reason)
        if commit:
            session.commit()
        return True
    ti = session.execute(
        select(TaskInstance).where(*_pk(key), TaskInstance.try_number == key.try_number,
                                   TaskInstance.state == expect.value).with_for_update()
    ).scalar_one_or_none()
    if ti is None:
        session.rollback()
        return False
    started = ti.start_date or outcome.ended_at
    ti.state = outcome.state.value
    ti.end_date = outcome.ended_at
    ti.duration = max(0.0, (outcome.ended_at - started).total_seconds())
    ti.reason = outcome.reason
    ti.next_retry_at = outcome.next_retry_at
    record_attempt(session, key, outcome.state.value, started, outcome.ended_at, ti.hostname, ti.pid, outcome.reason)
    session.commit()
    return True


def record_attempt(
    session: Session, key: TaskInstanceKey, state: str, started: datetime | None, ended: datetime | None,
    hostname: str | None, pid: int | None, reason: str | None,
) -> None:
    """Upsert the history row of one try (a try can be released and re-run after a warm shutdown)."""
    values = dict(dag_id=key.dag_id, task_id=key.task_id, run_id=key.run_id, map_index=key.map_index,
                  try_number=key.try_number, state=state, start_date=started, end_date=ended,
                  hostname=hostname, pid=pid, reason=reason)
    dialect = session.get_bind().dialect.name
    insert_fn = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert_fn(TaskAttempt).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["dag_id", "task_id", "run_id", "map_index", "try_number"],
        set_={k: stmt.excluded[k] for k in ("state", "start_date", "end_date", "hostname", "pid", "reason")},
    )
    session.execute(stmt)


def failure_outcome(
    try_number: int, max_tries: int, retry_delay: timedelta | None, reason: str, now: datetime, *, retry: bool = True
) -> Finish:
    """Pure decision: up_for_retry while tries remain (try_number <= max_tries), else failed."""
    if retry and try_number <= max_tries:
        return Finish(TaskState.UP_FOR_RETRY, now, reason, now + (retry_delay or timedelta(0)))
    return Finish(TaskState.FAILED, now, reason)


__all__ = ["Claim", "Finish", "claim", "failure_outcome", "finish", "get_ti", "heartbeat", "record_attempt",
           "reschedule", "utcnow"]
