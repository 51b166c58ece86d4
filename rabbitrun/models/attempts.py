"""Claim, heartbeat and finish task attempts with compare-and-set updates.

Every transition here is one conditional UPDATE on the task instance row that
names the expected state and ``try_number``: whoever loses the race sees
rowcount 0 and does nothing (DESIGN rule 2). Both the task process (claim,
finish) and the worker parent (heartbeat, finish of a killed child) use these.
The state-writing statements are :mod:`rabbitrun.models.transitions`' (the one
owner of task-instance state writes); :mod:`rabbitrun.models.attempt_sql` compiles
them once per dialect and runs them on the DB-API cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models import transitions, xcom
from rabbitrun.models.attempt_sql import AttemptDB as AttemptDB  # re-exported: the attempt operations take it
from rabbitrun.models.attempt_sql import attempt_db as attempt_db  # re-exported: callers open it here
from rabbitrun.models.attempt_sql import key_params
from rabbitrun.models.base import utcnow
from rabbitrun.models.outcomes import Finish, RescheduleHistory, failure_outcome
from rabbitrun.models.tables import TaskInstance, TaskReschedule
from rabbitrun.states import TaskState


def _pk(key: TaskInstanceKey) -> tuple[ColumnElement[bool], ...]:
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
    run: SimpleNamespace | None = None  # the dag_run row: conf, logical_date, data intervals, ...


def claim(
    session: Session | AttemptDB,
    key: TaskInstanceKey,
    *,
    hostname: str,
    pid: int,
    now: datetime,
    envelope_id: str | None = None,
    commit: bool = True,
    queue: str | None = None,
) -> Claim:
    """QUEUED -> RUNNING for exactly this try_number, in one statement; commits.

    ``envelope_id`` is the delivery being run: an older envelope of the same try
    (requeued while stuck in queued, or published twice) can win the claim, and
    heartbeats are keyed by the envelope the worker runs, so the row records it.

    The same transaction reads the DAG run (for the task's context) and removes
    the task instance's previous XComs, so a cleared and re-run task replaces
    them instead of appending duplicates: one round trip of work, one commit.
    """
    db = AttemptDB.of(session)
    params = {
        **key_params(key),
        "p_now": now,
        "p_host": hostname,
        "p_pid": pid,
        "p_envelope": envelope_id,
        "p_queue": queue,  # the envelope's queue: it must be the row's, or the claim loses
    }
    won = _claim_statements(db, params, commit)
    if won is not None:
        return Claim(True, TaskState.RUNNING.value, key.try_number, *won)
    if commit:
        db.rollback()
    row = db.execute("state", params).fetchone()
    if commit:
        db.rollback()  # end the read too: the connection goes on idle, as after a won claim
    return Claim(False, row[0] if row else None, row[1] if row else None)


def _claim_statements(db: AttemptDB, params: dict[str, Any], commit: bool) -> tuple[int, str, SimpleNamespace] | None:
    """Run the claim (one statement on PostgreSQL, three on SQLite), committed if it won and
    ``commit``: (max_tries, queue, dag run) when it won, None when it lost (nothing written; on
    SQLite the caller ends the open transaction)."""
    if "claim_in_one" in db.statements:
        row = db.fetch_one("claim_in_one", params, alone=commit)
        return (row[0], row[1], db.statements["claim_run"].record(row[2:])) if row is not None else None
    won = db.execute("claim", params).fetchone()
    if won is None:
        return None
    run = db.statements["claim_run"].record(db.execute("claim_run", params).fetchone())
    db.execute("clear_xcom", params)
    if commit:
        db.commit()
    return won[0], won[1], run


def _finish_statements(
    db: AttemptDB,
    key: TaskInstanceKey,
    outcome: Finish,
    expect: TaskState,
    started_at: datetime,
    commit: bool,
    envelope_id: str | None = None,
) -> bool:
    """The final state and the attempt's history row (one statement on PostgreSQL, two on SQLite),
    committed if ``commit``; False when the state was not ``expect`` any more (nothing written)."""
    transitions.check_finish(expect, outcome.state)
    params = {
        **key_params(key),
        "p_expect": expect.value,
        "p_state": outcome.state.value,
        "p_start": started_at,
        "p_end": outcome.ended_at,
        "p_reason": outcome.reason,
        "p_next": outcome.next_retry_at,
        "p_duration": max(0.0, (outcome.ended_at - started_at).total_seconds()),
        "p_envelope": envelope_id,
    }
    if "finish_in_one" in db.statements:
        return db.fetch_one("finish_in_one", params, alone=commit) is not None
    row = db.execute("finish", params).fetchone()
    if row is None:
        return False
    record_attempt(db, key, outcome.state.value, started_at, outcome.ended_at, row[0], row[1], outcome.reason)
    if commit:
        db.commit()
    return True


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


def finish(
    session: Session | AttemptDB,
    key: TaskInstanceKey,
    outcome: Finish,
    *,
    expect: TaskState = TaskState.RUNNING,
    started_at: datetime | None = None,
    commit: bool = True,
    envelope_id: str | None = None,
) -> bool:
    """RUNNING -> final state for this try_number; records the attempt row. Commits.

    ``envelope_id`` is the fencing token of the hot path (with ``started_at``): the delivery that
    claimed the attempt, None for an in-process run; a finish with another one changes nothing.

    Returns False when the attempt was already decided elsewhere (e.g. the
    scheduler failed it as a zombie): the first decision stands. Whoever knows
    when the attempt started (the runner) passes ``started_at`` and saves a read.
    """
    if started_at is not None:
        db = AttemptDB.of(session)
        if not _finish_statements(db, key, outcome, expect, started_at, commit, envelope_id):
            db.rollback()  # SQLite left a transaction open; after a commit, there is none
            return False
        return True
    assert isinstance(session, Session), "an attempt's start is read through the ORM"
    transitions.check_finish(expect, outcome.state)
    ti = session.execute(
        select(TaskInstance)
        .where(*_pk(key), TaskInstance.try_number == key.try_number, TaskInstance.state == expect.value)
        .with_for_update()
        .execution_options(populate_existing=True)  # the row as locked: the compare-and-set below expects it
    ).scalar_one_or_none()
    if ti is None:
        session.rollback()
        return False
    started = ti.start_date or outcome.ended_at
    duration = max(0.0, (outcome.ended_at - started).total_seconds())
    if not transitions.change(
        session,
        ti,
        transitions.FINISH,
        outcome.state,
        expected=expect,
        end_date=outcome.ended_at,
        duration=duration,
        reason=outcome.reason,
        next_retry_at=outcome.next_retry_at,
    ):
        session.rollback()
        return False
    record_attempt(session, key, outcome.state.value, started, outcome.ended_at, ti.hostname, ti.pid, outcome.reason)
    session.commit()
    return True


@dataclass(frozen=True, slots=True)
class EndRecord:
    """How one attempt ended, as its worker records it: ``value`` is the return value's XCom row
    (already stored by the task's backend), ``envelope_id`` the delivery that claimed it (None for
    an in-process run), ``started_at`` when it was claimed."""

    key: TaskInstanceKey
    outcome: Finish
    started_at: datetime
    value: tuple[bytes, str] | None = None
    envelope_id: str | None = None
    hostname: str | None = None


#: the states an attempt can end in (QUEUED: released for a shutdown, the same try runs again)
END_STATES = frozenset(
    {
        TaskState.SUCCESS,
        TaskState.FAILED,
        TaskState.UP_FOR_RETRY,
        TaskState.SKIPPED,
        TaskState.UP_FOR_RESCHEDULE,
        TaskState.QUEUED,
    }
)


def record_ends(session: Session, ends: Sequence[EndRecord], *, max_xcom_bytes: int) -> list[tuple[Finish, bool]]:
    """Record how attempts ended, all in one transaction (committed): the worker's group commit.

    Each gets its final state and history row, its return value's XCom row or its reschedule row,
    the downstream tasks a success skips (the caller checked they are its downstream);
    or its release to QUEUED (same try) when it was stopped for a shutdown. Every write is a
    compare-and-set on the attempt and its fencing token: one that lost (decided elsewhere, or
    another delivery owns it now) writes nothing, and the others still commit.

    Returns, per end, the finish recorded (FAILED when the value is over ``max_xcom_bytes``) and
    whether it stands.
    """
    results = [_record_end(session, end, max_xcom_bytes) for end in ends]
    session.commit()
    return results


def _record_end(session: Session, end: EndRecord, max_xcom_bytes: int) -> tuple[Finish, bool]:
    key, outcome = end.key, end.outcome
    if outcome.state == TaskState.QUEUED:  # released on shutdown: the requeued delivery claims it again
        at = outcome.ended_at
        released = transitions.release(session, key, outcome.reason or "released", at, envelope_id=end.envelope_id)
        if released:
            record_attempt(session, key, "terminated", None, at, end.hostname, None, outcome.reason)
        return outcome, released
    value = end.value
    if value is not None and max_xcom_bytes and len(value[0]) > max_xcom_bytes:
        outcome = Finish(
            TaskState.FAILED, outcome.ended_at, xcom.too_big(key, xcom.RETURN_VALUE, value, max_xcom_bytes)
        )
        value = None
    db = AttemptDB.of(session)
    if not _finish_statements(db, key, outcome, TaskState.RUNNING, end.started_at, False, end.envelope_id):
        return outcome, False
    if value is not None:
        xcom.put_row(session, key, xcom.RETURN_VALUE, value[0], value[1], max_bytes=max_xcom_bytes)
    if outcome.state == TaskState.UP_FOR_RESCHEDULE:
        assert outcome.next_retry_at is not None
        record_reschedule(session, key, end.started_at, outcome.ended_at, outcome.next_retry_at)
    if outcome.state == TaskState.SUCCESS and outcome.skip:  # with the success: no reader sees one without the other
        reason = f"skipped by {key.task_id}"
        transitions.skip_downstream(session, key.dag_id, key.run_id, outcome.skip, outcome.ended_at, reason)
    return outcome, True


def claim_many(
    db: AttemptDB, claims: Sequence[tuple[TaskInstanceKey, str, str]], *, hostname: str, pid: int, now: datetime
) -> list[Claim]:
    """Claim several attempts ((key, envelope id, envelope queue) each) in one transaction
    (committed): a worker claims the deliveries it received together with one commit. A claim that
    loses writes nothing; one whose queue is not the row's loses."""
    results = [
        claim(db, key, hostname=hostname, pid=pid, now=now, envelope_id=envelope_id, commit=False, queue=queue)
        for key, envelope_id, queue in claims
    ]
    db.commit()
    return results


def record_attempt(
    session: Session | AttemptDB,
    key: TaskInstanceKey,
    state: str,
    started: datetime | None,
    ended: datetime | None,
    hostname: str | None,
    pid: int | None,
    reason: str | None,
) -> None:
    """Upsert the history row of one try (a try can be released and re-run after a warm shutdown)."""
    AttemptDB.of(session).execute(
        "record_attempt",
        {
            "a_dag_id": key.dag_id,
            "a_task_id": key.task_id,
            "a_run_id": key.run_id,
            "a_map_index": key.map_index,
            "a_try_number": key.try_number,
            "a_state": state,
            "a_start_date": started,
            "a_end_date": ended,
            "a_hostname": hostname,
            "a_pid": pid,
            "a_reason": reason,
        },
    )


def record_reschedule(
    session: Session, key: TaskInstanceKey, started: datetime, ended: datetime, reschedule_at: datetime
) -> None:
    """Note one reschedule of this try, in the transaction that records UP_FOR_RESCHEDULE."""
    session.add(
        TaskReschedule(
            dag_id=key.dag_id,
            task_id=key.task_id,
            run_id=key.run_id,
            map_index=key.map_index,
            try_number=key.try_number,
            start_date=started,
            end_date=ended,
            reschedule_date=reschedule_at,
        )
    )


def reschedule_history(session: Session, key: TaskInstanceKey) -> RescheduleHistory:
    first, count = session.execute(
        select(func.min(TaskReschedule.start_date), func.count()).where(
            TaskReschedule.dag_id == key.dag_id,
            TaskReschedule.task_id == key.task_id,
            TaskReschedule.run_id == key.run_id,
            TaskReschedule.map_index == key.map_index,
            TaskReschedule.try_number == key.try_number,
        )
    ).one()
    return RescheduleHistory(first, int(count))


__all__ = [
    "AttemptDB",
    "Claim",
    "Finish",
    "RescheduleHistory",
    "attempt_db",
    "claim",
    "failure_outcome",
    "finish",
    "get_ti",
    "heartbeat",
    "record_attempt",
    "record_reschedule",
    "reschedule_history",
    "utcnow",
]
