"""The one owner of task-instance state writes (DESIGN rule 8): no other module sets ``task_instance.state``.

Every change of a task instance's state is a compare-and-set made here: the
UPDATE names the states the row is expected to be in, so whoever loses a race
changes 0 rows and nothing else. Each kind of change is an :class:`Edge`
declared below (the states it starts from, those it may end in); the edges are
checked against :data:`rabbitrun.states.TRANSITIONS` when this module loads, and
a caller asking an edge for a pair it does not hold gets
:class:`~rabbitrun.errors.InvalidTransition` before any SQL is built.

The hot statements are built here once, with bind parameters: the claim and
the finish (:mod:`rabbitrun.models.attempts` compiles them once per dialect and
runs them on its DB-API cursor, DESIGN rule 2) and the queueing UPDATE ...
RETURNING (one statement per dialect and try rule, for any number of rows).
Changes decided on rows a caller has loaded go through :func:`change` (one row)
or :class:`Changes` (many, one executemany per kind of change); set-based ones
through the named functions, all on :func:`transition`.

Creating task instances (state none, with their run or when a mapped task
expands) is an INSERT, not a change, and stays with whoever creates them.

Why one module of this size: DESIGN rule 8 asks for one owner, and
tests/unit/test_state_writes.py proves it by finding every write of the state column in
this file alone. Its parts (edges, the compare-and-set core, the named changes per
lifecycle stage) only make sense together; a split would just spread the owner.
tests/unit/test_state_writes.py fails when another module writes the column,
and checks that the edges here are exactly TRANSITIONS.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Integer, String, Table, and_, bindparam, func, or_, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from rabbitrun.errors import InvalidTransition
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models.tables import TaskInstance
from rabbitrun.states import ATTEMPT_OUTCOMES, CLAIMABLE_STATES, FINISHED_TASK_STATES, TaskState, allowed

_TI = cast(Table, TaskInstance.__table__)
_ALL = frozenset(TaskState)


@dataclass(frozen=True, slots=True)
class Edge:
    """One kind of state change: from any of ``sources`` to any of ``targets``, every pair of which
    TRANSITIONS allows (checked on creation)."""

    name: str
    sources: frozenset[TaskState]
    targets: frozenset[TaskState]

    def __post_init__(self) -> None:
        for from_, to in self.pairs():
            if not allowed(from_, to):
                raise InvalidTransition(from_.value, to.value, self.name)

    def pairs(self) -> Iterator[tuple[TaskState, TaskState]]:
        return ((from_, to) for from_ in sorted(self.sources) for to in sorted(self.targets))

    def check(self, from_: TaskState | str, to: TaskState | str) -> None:
        """Raise InvalidTransition unless this edge changes ``from_`` to ``to``."""
        if from_ not in self.sources or to not in self.targets:
            raise InvalidTransition(str(from_), str(to), self.name)


#: Every edge, by name: together they are exactly states.TRANSITIONS (tests/unit/test_state_writes.py).
EDGES: dict[str, Edge] = {}


def _edge(name: str, sources: Iterable[TaskState], targets: Iterable[TaskState]) -> Edge:
    edge = EDGES[name] = Edge(name, frozenset(sources), frozenset(targets))
    return edge


S = TaskState
# the attempt (attempts.py runs these on the hot path)
CLAIM = _edge("claim", CLAIMABLE_STATES | {S.RUNNING}, {S.RUNNING})  # RUNNING: the same claim, retried
FINISH = _edge("finish", {S.RUNNING}, ATTEMPT_OUTCOMES)
RELEASE = _edge("release on shutdown", {S.RUNNING}, {S.QUEUED})
REPUBLISH = _edge("republish", {S.QUEUED}, {S.SCHEDULED})  # a worker could not republish its delivery
# a branch / short circuit skips tasks downstream of it, with its success: only those not started yet
SKIP_DOWNSTREAM = _edge("skip downstream", {S.NONE, S.SCHEDULED}, {S.SKIPPED})
# the scheduler
QUEUE_NEW_TRY = _edge("queue", {S.NONE, S.UP_FOR_RETRY}, {S.QUEUED})
QUEUE_SAME_TRY = _edge("queue again", {S.SCHEDULED, S.UP_FOR_RESCHEDULE}, {S.QUEUED})
SETTLE = _edge("settle", {S.NONE}, {S.SKIPPED, S.UPSTREAM_FAILED, S.FAILED})  # trigger rules, mapping
UNKNOWN_POOL = _edge("unknown pool", QUEUE_NEW_TRY.sources | QUEUE_SAME_TRY.sources, {S.FAILED})
PUT_BACK = _edge("put back", {S.QUEUED}, {S.SCHEDULED, S.FAILED})  # its publish failed
STUCK_QUEUED = _edge("stuck in queued", {S.QUEUED}, {S.SCHEDULED, S.FAILED})
LEASE_EXPIRED = _edge("lease expired", {S.RUNNING}, {S.SCHEDULED, S.FAILED})  # its worker is gone
# an operator, by hand
RUN_HERE = _edge("tasks run", _ALL - CLAIMABLE_STATES, {S.QUEUED})
MARK_TASK = _edge("mark task", _ALL, {S.SUCCESS, S.FAILED})
RESET_DOWNSTREAM = _edge("reset downstream", {S.FAILED, S.UPSTREAM_FAILED}, {S.NONE})
MARK_RUN_SUCCESS = _edge("mark run success", _ALL - {S.SUCCESS}, {S.SUCCESS})
MARK_RUN_FAILED = _edge("mark run failed", {S.RUNNING}, {S.FAILED})
MARK_RUN_SKIP = _edge("mark run failed: skip the rest", _ALL - FINISHED_TASK_STATES, {S.SKIPPED})
CLEAR = _edge("clear", _ALL - {S.RUNNING, S.QUEUED}, {S.NONE})
COLLAPSE = _edge("collapse mapped", _ALL - {S.RUNNING, S.QUEUED}, {S.NONE})
del S


# --- set-based: a WHERE and the states it expects ------------------------------------------------


def statement(
    edge: Edge, where: Sequence[ColumnElement[bool]], from_states: Iterable[TaskState], to: TaskState, **columns: Any
) -> Any:
    """``UPDATE task_instance SET state = to, <columns> WHERE <where> AND state IN (from_states)``,
    each (from, to) checked against ``edge`` first."""
    sources = sorted(set(from_states))
    if not sources:
        raise InvalidTransition("(nothing)", str(to), edge.name)
    for from_ in sources:
        edge.check(from_, to)
    expected = (
        TaskInstance.state == sources[0].value
        if len(sources) == 1
        else TaskInstance.state.in_([s.value for s in sources])
    )
    return (
        update(TaskInstance)
        .where(*where, expected)
        .values(state=to.value, **columns)
        .execution_options(synchronize_session=False)
    )


def transition(
    session: Session,
    where: Sequence[ColumnElement[bool]],
    from_states: Iterable[TaskState],
    to: TaskState,
    *,
    edge: Edge,
    **columns: Any,
) -> int:
    """Compare-and-set the rows ``where`` selects that are in one of ``from_states`` to ``to``
    (and ``columns``); returns how many changed. Does not commit."""
    result = session.execute(statement(edge, where, from_states, to, **columns))
    return int(cast(CursorResult[Any], result).rowcount)


def _pk(key: TaskInstanceKey) -> list[ColumnElement[bool]]:
    return [
        TaskInstance.dag_id == key.dag_id,
        TaskInstance.task_id == key.task_id,
        TaskInstance.run_id == key.run_id,
        TaskInstance.map_index == key.map_index,
    ]


def release(
    session: Session, key: TaskInstanceKey, reason: str | None, at: datetime, *, envelope_id: str | None = None
) -> bool:
    """RUNNING -> QUEUED for this try, on a warm shutdown: the requeued delivery claims it again.
    ``envelope_id``: only while that delivery still owns the attempt (a worker's fencing token).
    Does not commit."""
    owner = [TaskInstance.envelope_id == envelope_id] if envelope_id is not None else []
    return bool(
        transition(
            session,
            [*_pk(key), TaskInstance.try_number == key.try_number, *owner],
            [TaskState.RUNNING],
            TaskState.QUEUED,
            edge=RELEASE,
            reason=reason,
            queued_at=at,
        )
    )


def mark_for_republish(session: Session, key: TaskInstanceKey, envelope_id: str, reason: str) -> bool:
    """QUEUED -> SCHEDULED for this envelope: no message carries it any more, so the scheduler
    publishes it again (same try). False when its state moved on meanwhile. Commits."""
    done = transition(
        session,
        [*_pk(key), TaskInstance.try_number == key.try_number, TaskInstance.envelope_id == envelope_id],
        [TaskState.QUEUED],
        TaskState.SCHEDULED,
        edge=REPUBLISH,
        reason=reason,
    )
    session.commit()
    return bool(done)


def put_back(
    session: Session, key: TaskInstanceKey, envelope_id: str, to: TaskState, reason: str, now: datetime
) -> bool:
    """QUEUED (with this envelope) -> SCHEDULED, or FAILED (ended now), after its publish failed.
    Does not commit."""
    columns: dict[str, Any] = {"reason": reason}
    if to == TaskState.FAILED:
        columns["end_date"] = now
    return bool(
        transition(
            session,
            [*_pk(key), TaskInstance.envelope_id == envelope_id],
            [TaskState.QUEUED],
            to,
            edge=PUT_BACK,
            **columns,
        )
    )


def end_stuck_queued(
    session: Session, key: TaskInstanceKey, envelope_id: str | None, to: TaskState, reason: str, now: datetime
) -> bool:
    """QUEUED (with the envelope seen) -> FAILED (ended now) or SCHEDULED (published again): no worker
    claimed it in time. Another scheduler may have handled it already. Does not commit."""
    columns: dict[str, Any] = {"reason": reason}
    if to == TaskState.FAILED:
        columns["end_date"] = now
    return bool(
        transition(
            session,
            [*_pk(key), TaskInstance.envelope_id == envelope_id],
            [TaskState.QUEUED],
            to,
            edge=STUCK_QUEUED,
            **columns,
        )
    )


def end_lost_attempt(
    session: Session,
    key: TaskInstanceKey,
    envelope_id: str | None,
    expired_before: datetime,
    to: TaskState,
    reason: str,
    now: datetime,
) -> bool:
    """RUNNING (claimed by ``envelope_id``, lease last renewed before ``expired_before``) -> SCHEDULED
    (published again as the same try, one more infrastructure retry counted) or FAILED (ended now).

    The lease is part of the compare-and-set: a renewal that lands first keeps the attempt, and so
    does another scheduler that handled it already. Does not commit."""
    columns: dict[str, Any] = {"reason": reason}
    if to == TaskState.FAILED:
        columns["end_date"] = now
    else:
        columns["infra_retries"] = TaskInstance.infra_retries + 1
    where = [
        *_pk(key),
        TaskInstance.try_number == key.try_number,
        TaskInstance.envelope_id == envelope_id,
        TaskInstance.last_heartbeat_at < expired_before,
    ]
    return bool(transition(session, where, [TaskState.RUNNING], to, edge=LEASE_EXPIRED, **columns))


def skip_downstream(
    session: Session, dag_id: str, run_id: str, task_ids: Sequence[str], now: datetime, reason: str
) -> int:
    """NONE / SCHEDULED -> SKIPPED for these tasks of the run (every map index): what a branch or a
    short circuit skips, in the transaction that records its success. A task that started already
    (or finished) is left alone. Returns how many rows changed. Does not commit."""
    if not task_ids:
        return 0
    where = [TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id.in_(list(task_ids))]
    return transition(
        session,
        where,
        SKIP_DOWNSTREAM.sources,
        TaskState.SKIPPED,
        edge=SKIP_DOWNSTREAM,
        start_date=now,
        end_date=now,
        duration=0.0,
        reason=reason,
    )


def reset_downstream(session: Session, dag_id: str, run_id: str, task_ids: Sequence[str]) -> list[str]:
    """FAILED / UPSTREAM_FAILED -> NONE for these tasks of the run (downstream of a task marked by
    hand), so they are evaluated again; returns the task ids reset. Does not commit."""
    if not task_ids:
        return []
    stmt = statement(
        RESET_DOWNSTREAM,
        [TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id.in_(list(task_ids))],
        RESET_DOWNSTREAM.sources,
        TaskState.NONE,
        end_date=None,
        reason=None,
    )
    return list(session.execute(stmt.returning(TaskInstance.task_id)).scalars())


def mark_run(session: Session, dag_id: str, run_id: str, state: TaskState, now: datetime, reason: str) -> None:
    """A run's task instances as Airflow's mark run success/failed sets them: success -> every one
    not already success; failed -> running ones failed, the other unfinished ones skipped. Does not
    commit."""
    mine = [TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id]
    if state == TaskState.SUCCESS:
        transition(
            session,
            mine,
            MARK_RUN_SUCCESS.sources,
            TaskState.SUCCESS,
            edge=MARK_RUN_SUCCESS,
            end_date=now,
            next_retry_at=None,
            reason=reason,
        )
        return
    transition(
        session, mine, MARK_RUN_FAILED.sources, TaskState.FAILED, edge=MARK_RUN_FAILED, end_date=now, reason=reason
    )
    transition(
        session,
        mine,
        MARK_RUN_SKIP.sources,
        TaskState.SKIPPED,
        edge=MARK_RUN_SKIP,  # running: failed now
        end_date=now,
        next_retry_at=None,
        reason=reason,
    )


def collapse(session: Session, dag_id: str, run_id: str, task_id: str, *, try_number: int, max_tries: int) -> bool:
    """A cleared mapped task's instance 0 becomes its placeholder again (map_index -1, state none),
    unless it is queued or running; the caller deletes the other instances. Does not commit."""
    where = [
        TaskInstance.dag_id == dag_id,
        TaskInstance.run_id == run_id,
        TaskInstance.task_id == task_id,
        TaskInstance.map_index == 0,
    ]
    return bool(
        transition(
            session,
            where,
            COLLAPSE.sources,
            TaskState.NONE,
            edge=COLLAPSE,
            map_index=-1,
            try_number=try_number,
            max_tries=max_tries,
            end_date=None,
            reason=None,
            next_retry_at=None,
        )
    )


# --- rows a caller loaded: the row shows its new values, as an ORM attribute set would -------------


def _row_key(ti: TaskInstance) -> dict[str, Any]:
    return {"k_dag": ti.dag_id, "k_task": ti.task_id, "k_run": ti.run_id, "k_map": ti.map_index, "k_try": ti.try_number}


_ROW_STATEMENTS: dict[tuple[TaskState, TaskState, tuple[str, ...]], Any] = {}


def _row_statement(from_: TaskState, to: TaskState, names: tuple[str, ...]) -> Any:
    """One row by its key and try, expected in ``from_``; ``names``' values are parameters ``c_<name>``.
    Built once per kind of change (the edge was checked by the caller)."""
    found = _ROW_STATEMENTS.get((from_, to, names))
    if found is None:
        found = _ROW_STATEMENTS[(from_, to, names)] = (
            update(_TI)
            .where(_ti_pk(), _TI.c.state == from_.value)
            .values(state=to.value, **{name: bindparam(f"c_{name}") for name in names})
        )
    return found


def _show(ti: TaskInstance, to: TaskState, columns: dict[str, Any]) -> None:
    """The written values on the loaded row, without making it dirty (the ORM must not write them again)."""
    set_committed_value(ti, "state", to.value)
    for name, value in columns.items():
        set_committed_value(ti, name, value)


def change(
    session: Session, ti: TaskInstance, edge: Edge, to: TaskState, *, expected: TaskState | None = None, **columns: Any
) -> bool:
    """Compare-and-set one loaded row (by its key and try) from the state it was read in (or
    ``expected``) to ``to``, now; the row shows its new values. False, and the row expired, when its
    state moved on meanwhile. Does not commit."""
    from_ = TaskState(ti.state if expected is None else expected)
    edge.check(from_, to)
    names = tuple(sorted(columns))
    params = {**_row_key(ti), **{f"c_{name}": columns[name] for name in names}}
    done = cast(CursorResult[Any], session.execute(_row_statement(from_, to, names), params)).rowcount
    if done:
        _show(ti, to, columns)
    elif ti in session:
        session.expire(ti)
    return bool(done)


class Changes:
    """State changes decided on loaded rows during one pass (a scheduler pass skipping a fan-out,
    a clear), written together: one executemany compare-and-set per kind of change, as the ORM's
    flush wrote them. Each row shows its new values at once, so the rest of the pass sees them;
    :meth:`write` must run before the transaction commits. A kind of change in which some row had
    moved on meanwhile expires its rows (they reload on next use)."""

    def __init__(self) -> None:
        # per kind of change: its statement, and each row with its parameters
        self._rows: dict[
            tuple[TaskState, TaskState, tuple[str, ...]], tuple[Any, list[tuple[TaskInstance, dict[str, Any]]]]
        ] = {}

    def add(self, ti: TaskInstance, edge: Edge, to: TaskState, **columns: Any) -> None:
        from_ = TaskState(ti.state)
        edge.check(from_, to)
        names = tuple(sorted(columns))
        params = {**_row_key(ti), **{f"c_{name}": columns[name] for name in names}}
        kind = self._rows.get((from_, to, names))
        if kind is None:
            kind = self._rows[(from_, to, names)] = (_row_statement(from_, to, names), [])
        kind[1].append((ti, params))
        _show(ti, to, columns)

    def __len__(self) -> int:
        return sum(len(rows) for _, rows in self._rows.values())

    def write(self, session: Session) -> int:
        """Run the pending changes; returns how many rows changed. Does not commit."""
        changed = 0
        pending, self._rows = self._rows, {}
        for stmt, rows in pending.values():
            result = cast(CursorResult[Any], session.execute(stmt, [params for _, params in rows]))
            changed += result.rowcount
            if result.rowcount != len(rows):
                for ti, _ in rows:
                    if ti in session:
                        session.expire(ti)
        return changed


# --- the hot statements ------------------------------------------------------------------------


def _ti_pk() -> Any:
    return and_(
        _TI.c.dag_id == bindparam("k_dag"),
        _TI.c.task_id == bindparam("k_task"),
        _TI.c.run_id == bindparam("k_run"),
        _TI.c.map_index == bindparam("k_map"),
        _TI.c.try_number == bindparam("k_try"),
    )


def _claim_update() -> Any:
    for from_ in CLAIM.sources:
        CLAIM.check(from_, TaskState.RUNNING)
    return (
        update(_TI)
        .where(
            _ti_pk(),
            # the envelope's queue must be the row's (p_queue NULL: in-process run, no envelope):
            # a forged envelope cannot run an isolated queue's task elsewhere (issue 17, finding 5)
            or_(bindparam("p_queue", type_=String).is_(None), _TI.c.queue == bindparam("p_queue", type_=String)),
            # ... or already ours: a retry after a commit whose answer was lost wins again
            or_(
                *(_TI.c.state == s.value for s in sorted(CLAIMABLE_STATES)),
                and_(
                    _TI.c.state == TaskState.RUNNING.value,
                    _TI.c.pid == bindparam("p_pid"),
                    _TI.c.hostname == bindparam("p_host"),
                    _TI.c.start_date == bindparam("p_now"),
                ),
            ),
        )
        .values(
            state=TaskState.RUNNING.value,
            start_date=bindparam("p_now"),
            end_date=None,
            duration=None,
            hostname=bindparam("p_host"),
            pid=bindparam("p_pid"),
            last_heartbeat_at=bindparam("p_now"),
            reason=None,
            next_retry_at=None,
            # the envelope that won is the one the worker heartbeats; NULL (in-process run): keep the row's
            envelope_id=func.coalesce(bindparam("p_envelope", type_=_TI.c.envelope_id.type), _TI.c.envelope_id),
        )
    )


#: QUEUED / SCHEDULED -> RUNNING for one try (binds k_* and p_now, p_host, p_pid, p_envelope, p_queue).
CLAIM_UPDATE = _claim_update()

#: RUNNING (p_expect) -> the attempt's outcome (p_state): :func:`check_finish` the pair before running it.
#: The fencing token: only the delivery that claimed the attempt (p_envelope; None in process) ends it,
#: so a worker that lost its lease cannot finish the same try another worker runs now.
FINISH_UPDATE = (
    update(_TI)
    .where(
        _ti_pk(),
        _TI.c.state == bindparam("p_expect"),
        func.coalesce(_TI.c.envelope_id, "") == func.coalesce(bindparam("p_envelope", type_=String), ""),
    )
    .values(
        state=bindparam("p_state"),
        end_date=bindparam("p_end"),
        reason=bindparam("p_reason"),
        duration=bindparam("p_duration"),
        next_retry_at=bindparam("p_next"),
    )
    .returning(_TI.c.hostname, _TI.c.pid)
)


def check_finish(expect: TaskState, to: TaskState) -> None:
    """The pair FINISH_UPDATE is about to write; InvalidTransition unless the finish edge holds it."""
    FINISH.check(expect, to)


_READ_AS = ("dag_id", "task_id", "run_id", "map_index", "try_number", "state")
_READ_AS_TYPES = (String, String, String, Integer, Integer, String)
_QUEUE_STATEMENTS: dict[tuple[str, bool], Any] = {}
QueueRow = tuple[str, str, str, int, int, str | None]


def queue_rows(
    session: Session, rows: Sequence[QueueRow], *, keep_try: bool, queue: str, now: datetime
) -> list[tuple[str, str, str, int, int, str | None]]:
    """Ready rows -> QUEUED on ``queue``, each a compare-and-set on the (key, try, state) it was read
    with (``rows``): never queued twice (scheduler HA). ``keep_try``: SCHEDULED (a re-publish) and
    UP_FOR_RESCHEDULE rows keep their try and reason; else NONE / UP_FOR_RETRY take try + 1. Returns
    (dag_id, task_id, run_id, map_index, try_number, envelope_id) of the rows queued. Does not commit."""
    edge = QUEUE_SAME_TRY if keep_try else QUEUE_NEW_TRY
    for row in rows:
        if row[5] not in edge.sources:
            raise InvalidTransition(str(row[5]), TaskState.QUEUED.value, edge.name)
    dialect = session.get_bind().dialect.name
    return cast(
        list[tuple[str, str, str, int, int, str | None]],
        session.execute(
            _queue_statement(dialect, keep_try), {"q_now": now, "q_queue": queue, **_read_as_params(dialect, rows)}
        ).all(),
    )


def _queue_statement(dialect: str, keep_try: bool) -> Any:
    """The UPDATE ... RETURNING that queues ready rows, built once per dialect and try rule (its
    values and rows are parameters): building it per pass through the ORM cost each pass ~1 ms.

    PostgreSQL joins the rows, sent as six arrays, on the primary key; a row-value IN list of
    500 is planned there as a 500-way OR over every row of the run (80 ms per 500 rows of a
    10,000-task run; issue 6, W6). SQLite takes the IN list through its index."""
    statement = _QUEUE_STATEMENTS.get((dialect, keep_try))
    if statement is not None:
        return statement
    ti = _TI
    values: dict[str, Any] = {
        "state": TaskState.QUEUED.value,
        "queued_at": bindparam("q_now"),
        "queue": bindparam("q_queue"),
        "hostname": None,
        "pid": None,
        "start_date": None,
        "end_date": None,
        "duration": None,
        "envelope_id": _random_id(dialect),
    }
    if not keep_try:  # re-published SCHEDULED and rescheduled sensors keep their try (and reason)
        values.update(try_number=ti.c.try_number + 1, reason=None)
    if dialect == "postgresql":
        read = (
            func.unnest(
                *(
                    bindparam(f"read_{name}", type_=ARRAY(kind))
                    for name, kind in zip(_READ_AS, _READ_AS_TYPES, strict=True)
                )
            )
            .table_valued(*_READ_AS)
            .render_derived(name="read_as")
        )
        match = [ti.c[name] == read.c[name] for name in _READ_AS]
    else:
        match = [tuple_(*(ti.c[name] for name in _READ_AS)).in_(bindparam("read_rows", expanding=True))]
    statement = _QUEUE_STATEMENTS[(dialect, keep_try)] = (
        update(ti)
        .where(*match)
        .values(values)
        .returning(ti.c.dag_id, ti.c.task_id, ti.c.run_id, ti.c.map_index, ti.c.try_number, ti.c.envelope_id)
    )
    return statement


def _read_as_params(dialect: str, rows: Sequence[QueueRow]) -> dict[str, Any]:
    if dialect == "postgresql":
        return {f"read_{name}": [row[i] for row in rows] for i, name in enumerate(_READ_AS)}
    return {"read_rows": rows}


def _random_id(dialect: str) -> Any:
    """A fresh 32-hex-digit id per row, computed by the database in a set-based UPDATE."""
    if dialect == "postgresql":
        return func.md5(func.random().cast(String) + func.clock_timestamp().cast(String))
    return func.lower(func.hex(func.randomblob(16)))


__all__ = [
    "CLAIM",
    "CLAIM_UPDATE",
    "EDGES",
    "FINISH",
    "FINISH_UPDATE",
    "Changes",
    "Edge",
    "change",
    "check_finish",
    "collapse",
    "end_stuck_queued",
    "mark_for_republish",
    "mark_run",
    "put_back",
    "queue_rows",
    "release",
    "reset_downstream",
    "skip_downstream",
    "statement",
    "transition",
]
