"""Claim, heartbeat and finish task attempts with compare-and-set updates.

Every transition here is one conditional UPDATE on the task instance row that
names the expected state and ``try_number``: whoever loses the race sees
rowcount 0 and does nothing (DESIGN rule 2). Both the task process (claim,
finish) and the worker parent (heartbeat, finish of a killed child) use these.
The state-writing statements are :mod:`rabbitrun.models.transitions`' (the one
owner of task-instance state writes); this module compiles them once per
dialect and runs them on the DB-API cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import ClauseElement, ColumnElement, Dialect, Table, and_, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler

from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models import transitions
from rabbitrun.models.base import utcnow
from rabbitrun.models.tables import DagRun, TaskAttempt, TaskInstance, TaskReschedule, XComRow
from rabbitrun.states import TaskState

# The statements of an attempt's hot path (claim, finish, attempt row) are built once, here, with
# bind parameters, compiled once per dialect by SQLAlchemy (in the zygote, before it forks) and run
# on the DB-API cursor (AttemptDB). Building them per call through the ORM cost ~5 ms of CPU per
# attempt; running them through Session and Core execution still cost a forked task child ~4 ms of
# CPU and 1.9 MB of pages copied from the zygote (issue 6).
_TI = cast(Table, TaskInstance.__table__)
_RUN = cast(Table, DagRun.__table__)
_XCOM = cast(Table, XComRow.__table__)
_ATTEMPT = cast(Table, TaskAttempt.__table__)


_CLAIM_UPDATE = transitions.CLAIM_UPDATE
_CLAIM = _CLAIM_UPDATE.returning(_TI.c.max_tries, _TI.c.queue)
_CLAIM_RUN = select(_RUN).where(_RUN.c.dag_id == bindparam("k_dag"), _RUN.c.run_id == bindparam("k_run"))
_STATE = select(_TI.c.state, _TI.c.try_number).where(
    _TI.c.dag_id == bindparam("k_dag"),
    _TI.c.task_id == bindparam("k_task"),
    _TI.c.run_id == bindparam("k_run"),
    _TI.c.map_index == bindparam("k_map"),
)
_CLAIM_CLEAR_XCOM = delete(_XCOM).where(
    _XCOM.c.dag_id == bindparam("k_dag"),
    _XCOM.c.task_id == bindparam("k_task"),
    _XCOM.c.run_id == bindparam("k_run"),
    _XCOM.c.map_index == bindparam("k_map"),
)
_FINISH = transitions.FINISH_UPDATE
_ATTEMPT_SET = ("state", "start_date", "end_date", "hostname", "pid", "reason")
_ATTEMPT_KEY = ["dag_id", "task_id", "run_id", "map_index", "try_number"]


def _attempt_upsert(insert_fn: Any) -> Any:
    stmt = insert_fn(_ATTEMPT).values({c.name: bindparam(f"a_{c.name}") for c in _ATTEMPT.c})
    return stmt.on_conflict_do_update(index_elements=_ATTEMPT_KEY, set_={k: stmt.excluded[k] for k in _ATTEMPT_SET})


_RECORD_ATTEMPT = {"postgresql": _attempt_upsert(pg_insert), "sqlite": _attempt_upsert(sqlite_insert)}


# PostgreSQL runs each half of an attempt as ONE statement (data-modifying CTEs; SQLite has none):
# the claim, the read of its DAG run and the clearing of old XComs; the finish and its attempt row.
# With autocommit (AttemptDB.fetch_one) each half is one round trip instead of BEGIN + 3 + COMMIT
# and BEGIN + 2 + COMMIT: a chained task's overhead fell ~6 ms per task (issue 6, W2, A/B pairs).
def _claim_in_one() -> Any:
    claimed = _CLAIM_UPDATE.returning(_TI.c.max_tries, _TI.c.queue).cte("claimed")
    cleared = _CLAIM_CLEAR_XCOM.where(select(claimed.c.max_tries).exists()).cte("cleared")  # only if it won
    run = _RUN.c.dag_id == bindparam("k_dag"), _RUN.c.run_id == bindparam("k_run")
    return (
        select(claimed.c.max_tries, claimed.c.queue, *_RUN.c)
        .select_from(claimed.outerjoin(_RUN, and_(*run)))
        .add_cte(cleared)
    )


def _finish_in_one() -> Any:
    finished = _FINISH.cte("finished")
    values = {
        "dag_id": bindparam("k_dag"),
        "task_id": bindparam("k_task"),
        "run_id": bindparam("k_run"),
        "map_index": bindparam("k_map"),
        "try_number": bindparam("k_try"),
        "state": bindparam("p_state"),
        "start_date": bindparam("p_start", type_=_ATTEMPT.c.start_date.type),
        "end_date": bindparam("p_end"),
        "hostname": finished.c.hostname,
        "pid": finished.c.pid,
        "reason": bindparam("p_reason"),
    }
    stmt = pg_insert(_ATTEMPT).from_select(list(values), select(*values.values()))
    return (
        stmt.on_conflict_do_update(index_elements=_ATTEMPT_KEY, set_={k: stmt.excluded[k] for k in _ATTEMPT_SET})
        .returning(_ATTEMPT.c.hostname)
        .add_cte(finished)
    )


class _Compiled:
    """One hot-path statement as the driver takes it: SQL text, the values of its literal binds,
    and the type processors SQLAlchemy would apply (UTCDateTime's UTC rule, SQLite's date text)."""

    def __init__(self, statement: ClauseElement, dialect: Dialect, rows_of: Table | None = None) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.sql = compiled.string
        self.positions = compiled.positiontup  # qmark drivers (SQLite); None: named (psycopg)
        binds = compiled.binds
        self.defaults = {name: b.value for name, b in binds.items() if not b.required}
        self.bind_processors = [
            (name, proc)
            for name, b in binds.items()
            if (proc := b.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        ]
        self.columns = [c.name for c in rows_of.c] if rows_of is not None else []
        self.result_processors = (
            [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in rows_of.c]
            if rows_of is not None
            else []
        )

    def params(self, values: dict[str, Any]) -> Any:
        params = {**self.defaults, **values}
        for name, proc in self.bind_processors:
            params[name] = proc(params[name])
        return params if self.positions is None else [params[name] for name in self.positions]

    def record(self, row: Any) -> SimpleNamespace:
        """A result row as attributes, values converted as the ORM would (aware UTC datetimes)."""
        return SimpleNamespace(
            **{
                name: proc(value) if proc is not None else value
                for name, proc, value in zip(self.columns, self.result_processors, row, strict=True)
            }
        )


_COMPILED: dict[str, dict[str, _Compiled]] = {}


def _compiled(dialect: Dialect) -> dict[str, _Compiled]:
    found = _COMPILED.get(dialect.name)
    if found is None:
        found = _COMPILED[dialect.name] = {
            "claim": _Compiled(_CLAIM, dialect),
            "claim_run": _Compiled(_CLAIM_RUN, dialect, rows_of=_RUN),
            "clear_xcom": _Compiled(_CLAIM_CLEAR_XCOM, dialect),
            "state": _Compiled(_STATE, dialect),
            "finish": _Compiled(_FINISH, dialect),
            "record_attempt": _Compiled(_RECORD_ATTEMPT[dialect.name], dialect),
        }
        if dialect.name == "postgresql":
            found["claim_in_one"] = _Compiled(_claim_in_one(), dialect)
            found["finish_in_one"] = _Compiled(_finish_in_one(), dialect)
    return found


class AttemptDB:
    """The DB-API connection an attempt's hot path runs on: the compiled statements above, the
    transaction ended by ``commit``/``rollback`` of its owner (a Session, or a connection checked
    out of the engine's pool). Driver errors come out as SQLAlchemy's DBAPIError, with a dropped
    connection invalidated, so ``retrying`` and ``db_errors`` treat them as they treat the ORM's."""

    def __init__(
        self,
        dbapi_connection: Any,
        dialect: Dialect,
        commit: Callable[[], None],
        rollback: Callable[[], None],
        invalidate: Callable[[BaseException], None],
        autocommit: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        self._conn, self.dialect = dbapi_connection, dialect
        self._commit, self._rollback, self._invalidate = commit, rollback, invalidate
        self._autocommit = autocommit
        self.statements = _compiled(dialect)

    @classmethod
    def of(cls, db: Session | AttemptDB) -> AttemptDB:
        """The session's own connection and transaction (callers that hold a Session)."""
        if isinstance(db, AttemptDB):
            return db
        connection = db.connection()
        return cls(
            connection.connection.dbapi_connection, connection.dialect, db.commit, db.rollback, connection.invalidate
        )

    @property
    def autocommits(self) -> bool:
        """Whether ``fetch_one(..., alone=True)`` runs in autocommit (one round trip) here."""
        return self._autocommit is not None

    def fetch_one(self, name: str, values: dict[str, Any], *, alone: bool) -> Any:
        """Run one statement and return its first row (or None); ``alone``: as a transaction of
        its own. On its own psycopg connection that is autocommit: one round trip, where BEGIN,
        statement and COMMIT cost three. Elsewhere (SQLite, a Session's connection) it runs,
        then commits."""
        if not alone:
            return self.execute(name, values).fetchone()
        if self._autocommit is None:
            row = self.execute(name, values).fetchone()
            self.commit()
            return row
        with self._autocommit():
            return self.execute(name, values).fetchone()

    def execute(self, name: str, values: dict[str, Any]) -> Any:
        statement = self.statements[name]
        params = statement.params(values)
        cursor = self._conn.cursor()
        try:
            cursor.execute(statement.sql, params)
        except self.dialect.loaded_dbapi.Error as exc:
            raise self._wrapped(exc, statement.sql, params, cursor) from exc
        return cursor

    def commit(self) -> None:
        try:
            self._commit()
        except self.dialect.loaded_dbapi.Error as exc:
            raise self._wrapped(exc, "COMMIT", None, None) from exc

    def rollback(self) -> None:
        self._rollback()

    def _wrapped(self, exc: Exception, sql: str, params: Any, cursor: Any) -> DBAPIError:
        lost = bool(self.dialect.is_disconnect(cast(Any, exc), self._conn, cursor))
        if lost:
            self._invalidate(exc)
        return cast(
            DBAPIError,
            DBAPIError.instance(
                sql, params, exc, self.dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=self.dialect
            ),
        )


@contextmanager
def attempt_db(sessions: sessionmaker[Session]) -> Iterator[AttemptDB]:
    """A connection from the engine's pool, without a Session: what a task process claims and
    finishes on. Returned to the pool (rolled back if left open) on exit."""
    engine = sessions.kw["bind"]
    dbapi_error = engine.dialect.loaded_dbapi.Error
    try:
        raw = engine.raw_connection()
    except dbapi_error as exc:  # the pool does not wrap a failed connect as Session/Connection do
        raise cast(DBAPIError, DBAPIError.instance(None, None, exc, dbapi_error, dialect=engine.dialect)) from exc
    autocommit = _psycopg_autocommit(raw) if engine.dialect.driver == "psycopg" else None
    try:
        yield AttemptDB(raw, engine.dialect, raw.commit, raw.rollback, raw.invalidate, autocommit)
    finally:
        raw.close()


def _psycopg_autocommit(raw: Any) -> Callable[[], AbstractContextManager[None]]:
    """Autocommit on a pooled psycopg connection for one statement, switched off again before
    anything else runs on it. A connection that cannot switch back (it broke meanwhile) is
    invalidated: it must never go back to the pool in autocommit."""
    driver = raw.driver_connection

    @contextmanager
    def autocommit() -> Iterator[None]:
        driver.autocommit = True
        try:
            yield
        finally:
            if not driver.closed:  # closed: a lost connection, already invalidated
                try:
                    driver.autocommit = False
                except Exception as exc:  # noqa: BLE001 - the connection is unusable: drop it
                    raw.invalidate(exc)

    return autocommit


def _key_params(key: TaskInstanceKey) -> dict[str, Any]:
    return {
        "k_dag": key.dag_id,
        "k_task": key.task_id,
        "k_run": key.run_id,
        "k_map": key.map_index,
        "k_try": key.try_number,
    }


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
    params = {**_key_params(key), "p_now": now, "p_host": hostname, "p_pid": pid, "p_envelope": envelope_id}
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
    db: AttemptDB, key: TaskInstanceKey, outcome: Finish, expect: TaskState, started_at: datetime, commit: bool
) -> bool:
    """The final state and the attempt's history row (one statement on PostgreSQL, two on SQLite),
    committed if ``commit``; False when the state was not ``expect`` any more (nothing written)."""
    transitions.check_finish(expect, outcome.state)
    params = {
        **_key_params(key),
        "p_expect": expect.value,
        "p_state": outcome.state.value,
        "p_start": started_at,
        "p_end": outcome.ended_at,
        "p_reason": outcome.reason,
        "p_next": outcome.next_retry_at,
        "p_duration": max(0.0, (outcome.ended_at - started_at).total_seconds()),
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


def warm_connection(session: Session | AttemptDB, now: datetime, tag: str) -> None:
    """Run the hot path's statements once on a key no row has: they match and write nothing. A
    new PostgreSQL backend loads the catalog entries of these tables and their indexes on first
    use (~10 ms): a spare task process pays that before it gets a task, not inside the claim of
    one. Only statements the zygote compiled run here, so the child copies few of its pages."""
    key = TaskInstanceKey("~warmup~", "~warmup~", f"~warmup~{tag}")  # "~" is not allowed in dag ids
    params = {**_key_params(key), "p_now": now, "p_host": "", "p_pid": 0, "p_envelope": None}
    db = AttemptDB.of(session)
    alone = db.autocommits  # each its own transaction, one round trip each; else one, rolled back
    _claim_statements(db, params, commit=alone)
    _finish_statements(db, key, Finish(TaskState.SUCCESS, now), TaskState.RUNNING, now, commit=alone)
    db.rollback()


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


@dataclass(frozen=True, slots=True)
class Finish:
    """The final word on one attempt, decided by the runner or the worker parent."""

    state: TaskState
    ended_at: datetime
    reason: str | None = None
    next_retry_at: datetime | None = None


def finish(
    session: Session | AttemptDB,
    key: TaskInstanceKey,
    outcome: Finish,
    *,
    expect: TaskState = TaskState.RUNNING,
    started_at: datetime | None = None,
    commit: bool = True,
) -> bool:
    """RUNNING -> final state for this try_number; records the attempt row. Commits.

    Returns False when the attempt was already decided elsewhere (e.g. the
    scheduler failed it as a zombie): the first decision stands. Whoever knows
    when the attempt started (the runner) passes ``started_at`` and saves a read.
    """
    if started_at is not None:
        db = AttemptDB.of(session)
        if not _finish_statements(db, key, outcome, expect, started_at, commit):
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


@dataclass(frozen=True, slots=True)
class RescheduleHistory:
    """How long a sensor's try has been waiting: when its first poke started, and how many
    times it was rescheduled since."""

    first_started_at: datetime | None
    reschedules: int


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


def failure_outcome(
    try_number: int, max_tries: int, retry_delay: timedelta | None, reason: str, now: datetime, *, retry: bool = True
) -> Finish:
    """Pure decision: up_for_retry while tries remain (try_number <= max_tries), else failed."""
    if retry and try_number <= max_tries:
        return Finish(TaskState.UP_FOR_RETRY, now, reason, now + (retry_delay or timedelta(0)))
    return Finish(TaskState.FAILED, now, reason)


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
