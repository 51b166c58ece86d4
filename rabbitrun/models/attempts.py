"""Claim, heartbeat and finish task attempts with compare-and-set updates.

Every transition here is one conditional UPDATE on the task instance row that
names the expected state and ``try_number``: whoever loses the race sees
rowcount 0 and does nothing (DESIGN rule 2). Both the task process (claim,
finish) and the worker parent (heartbeat, finish of a killed child) use these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Row, Table, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models.base import utcnow
from rabbitrun.models.tables import DagRun, TaskAttempt, TaskInstance, TaskReschedule, XComRow
from rabbitrun.states import CLAIMABLE_STATES, TaskState

# The statements of an attempt's hot path (claim, finish, attempt row) are built once, here, with
# bind parameters, and run as Core on the session's connection. Building them per call through the
# ORM cost ~5 ms of CPU per attempt and, in a forked task child, touches (copies) thousands of pages
# the zygote shares with it (issue 6). Their compiled forms are warmed in the zygote before it forks.
_TI = cast(Table, TaskInstance.__table__)
_RUN = cast(Table, DagRun.__table__)
_XCOM = cast(Table, XComRow.__table__)
_ATTEMPT = cast(Table, TaskAttempt.__table__)


def _ti_pk() -> Any:
    return and_(_TI.c.dag_id == bindparam("k_dag"), _TI.c.task_id == bindparam("k_task"),
                _TI.c.run_id == bindparam("k_run"), _TI.c.map_index == bindparam("k_map"),
                _TI.c.try_number == bindparam("k_try"))


_CLAIM = (
    update(_TI)
    .where(_ti_pk(),
           # ... or already ours: a retry after a commit whose answer was lost wins again
           or_(_TI.c.state.in_([s.value for s in CLAIMABLE_STATES]),
               and_(_TI.c.state == TaskState.RUNNING.value, _TI.c.pid == bindparam("p_pid"),
                    _TI.c.hostname == bindparam("p_host"), _TI.c.start_date == bindparam("p_now"))))
    .values(state=TaskState.RUNNING.value, start_date=bindparam("p_now"), end_date=None, duration=None,
            hostname=bindparam("p_host"), pid=bindparam("p_pid"), last_heartbeat_at=bindparam("p_now"),
            reason=None, next_retry_at=None,
            # the envelope that won is the one the worker heartbeats; NULL (in-process run): keep the row's
            envelope_id=func.coalesce(bindparam("p_envelope", type_=_TI.c.envelope_id.type), _TI.c.envelope_id))
    .returning(_TI.c.max_tries, _TI.c.queue)
)
_CLAIM_RUN = select(_RUN).where(_RUN.c.dag_id == bindparam("k_dag"), _RUN.c.run_id == bindparam("k_run"))
_CLAIM_CLEAR_XCOM = delete(_XCOM).where(
    _XCOM.c.dag_id == bindparam("k_dag"), _XCOM.c.task_id == bindparam("k_task"),
    _XCOM.c.run_id == bindparam("k_run"), _XCOM.c.map_index == bindparam("k_map"))
_FINISH = (
    update(_TI)
    .where(_ti_pk(), _TI.c.state == bindparam("p_expect"))
    .values(state=bindparam("p_state"), end_date=bindparam("p_end"), reason=bindparam("p_reason"),
            duration=bindparam("p_duration"), next_retry_at=bindparam("p_next"))
    .returning(_TI.c.hostname, _TI.c.pid)
)
_ATTEMPT_SET = ("state", "start_date", "end_date", "hostname", "pid", "reason")


def _attempt_upsert(insert_fn: Any) -> Any:
    stmt = insert_fn(_ATTEMPT).values({c.name: bindparam(f"a_{c.name}") for c in _ATTEMPT.c})
    return stmt.on_conflict_do_update(index_elements=["dag_id", "task_id", "run_id", "map_index", "try_number"],
                                      set_={k: stmt.excluded[k] for k in _ATTEMPT_SET})


_RECORD_ATTEMPT = {"postgresql": _attempt_upsert(pg_insert), "sqlite": _attempt_upsert(sqlite_insert)}


def _key_params(key: TaskInstanceKey) -> dict[str, Any]:
    return {"k_dag": key.dag_id, "k_task": key.task_id, "k_run": key.run_id, "k_map": key.map_index,
            "k_try": key.try_number}


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
    run: Row[Any] | None = None  # the dag_run row: conf, logical_date, data intervals, ...


def claim(session: Session, key: TaskInstanceKey, *, hostname: str, pid: int, now: datetime,
          envelope_id: str | None = None, commit: bool = True) -> Claim:
    """QUEUED -> RUNNING for exactly this try_number, in one statement; commits.

    ``envelope_id`` is the delivery being run: an older envelope of the same try
    (requeued while stuck in queued, or published twice) can win the claim, and
    heartbeats are keyed by the envelope the worker runs, so the row records it.

    The same transaction reads the DAG run (for the task's context) and removes
    the task instance's previous XComs, so a cleared and re-run task replaces
    them instead of appending duplicates: one round trip of work, one commit.
    """
    params = {**_key_params(key), "p_now": now, "p_host": hostname, "p_pid": pid, "p_envelope": envelope_id}
    connection = session.connection()
    won = connection.execute(_CLAIM, params).first()
    if won is not None:
        run = connection.execute(_CLAIM_RUN, params).one()
        connection.execute(_CLAIM_CLEAR_XCOM, params)
        if commit:
            session.commit()
        return Claim(True, TaskState.RUNNING.value, key.try_number, won[0], won[1], run)
    if commit:
        session.rollback()
    row = session.execute(
        select(TaskInstance.state, TaskInstance.try_number).where(*_pk(key))
    ).first()
    return Claim(False, row[0] if row else None, row[1] if row else None)


def warm_connection(session: Session, now: datetime, tag: str) -> None:
    """Run the hot path's statements once on a key no row has, then roll back. A new PostgreSQL
    backend loads the catalog entries of these tables and their indexes on first use (~10 ms):
    a spare task process pays that before it gets a task, not inside the claim of one. Only
    statements the zygote compiled run here, so the child copies few of its pages. ``tag`` keeps
    concurrent warm-ups off each other's (rolled-back) attempt row."""
    key = TaskInstanceKey("~warmup~", "~warmup~", f"~warmup~{tag}")  # "~" is not allowed in dag ids
    params = {**_key_params(key), "p_now": now, "p_host": "", "p_pid": 0, "p_envelope": None}
    connection = session.connection()
    connection.execute(_CLAIM, params).first()
    connection.execute(_CLAIM_RUN, params).first()
    connection.execute(_CLAIM_CLEAR_XCOM, params)
    connection.execute(_FINISH, {**params, "p_expect": TaskState.RUNNING.value, "p_state": TaskState.SUCCESS.value,
                                 "p_end": now, "p_reason": None, "p_next": None, "p_duration": 0.0}).first()
    record_attempt(session, key, TaskState.SUCCESS.value, now, now, "", 0, None)  # an insert: rolled back
    session.rollback()


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


def mark_for_republish(session: Session, key: TaskInstanceKey, envelope_id: str, reason: str) -> bool:
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
        row = session.connection().execute(_FINISH, {
            **_key_params(key), "p_expect": expect.value, "p_state": outcome.state.value,
            "p_end": outcome.ended_at, "p_reason": outcome.reason, "p_next": outcome.next_retry_at,
            "p_duration": max(0.0, (outcome.ended_at - started_at).total_seconds())}).first()
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
    connection = session.connection()
    connection.execute(_RECORD_ATTEMPT[connection.dialect.name], {
        "a_dag_id": key.dag_id, "a_task_id": key.task_id, "a_run_id": key.run_id, "a_map_index": key.map_index,
        "a_try_number": key.try_number, "a_state": state, "a_start_date": started, "a_end_date": ended,
        "a_hostname": hostname, "a_pid": pid, "a_reason": reason})


def record_reschedule(session: Session, key: TaskInstanceKey, started: datetime, ended: datetime,
                      reschedule_at: datetime) -> None:
    """Note one reschedule of this try, in the transaction that records UP_FOR_RESCHEDULE."""
    session.add(TaskReschedule(dag_id=key.dag_id, task_id=key.task_id, run_id=key.run_id, map_index=key.map_index,
                               try_number=key.try_number, start_date=started, end_date=ended,
                               reschedule_date=reschedule_at))


@dataclass(frozen=True, slots=True)
class RescheduleHistory:
    """How long a sensor's try has been waiting: when its first poke started, and how many
    times it was rescheduled since."""

    first_started_at: datetime | None
    reschedules: int


def reschedule_history(session: Session, key: TaskInstanceKey) -> RescheduleHistory:
    first, count = session.execute(
        select(func.min(TaskReschedule.start_date), func.count()).where(
            TaskReschedule.dag_id == key.dag_id, TaskReschedule.task_id == key.task_id,
            TaskReschedule.run_id == key.run_id, TaskReschedule.map_index == key.map_index,
            TaskReschedule.try_number == key.try_number)
    ).one()
    return RescheduleHistory(first, int(count))


def failure_outcome(
    try_number: int, max_tries: int, retry_delay: timedelta | None, reason: str, now: datetime, *, retry: bool = True
) -> Finish:
    """Pure decision: up_for_retry while tries remain (try_number <= max_tries), else failed."""
    if retry and try_number <= max_tries:
        return Finish(TaskState.UP_FOR_RETRY, now, reason, now + (retry_delay or timedelta(0)))
    return Finish(TaskState.FAILED, now, reason)


__all__ = ["Claim", "Finish", "RescheduleHistory", "claim", "failure_outcome", "finish", "get_ti", "heartbeat",
           "mark_for_republish", "record_attempt", "record_reschedule", "reschedule_history", "utcnow"]
