"""The SQL of an attempt's hot path, compiled once per dialect and run on the DB-API cursor.

Claim, finish and the attempt row are what every task attempt pays for, so their statements are
built once with bind parameters, compiled once per dialect (in the zygote, before it forks) and run
through :class:`AttemptDB` on the raw connection; :mod:`rabbitrun.models.attempts` says what each
operation means. The state-writing statements themselves are :mod:`rabbitrun.models.transitions`'.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import ClauseElement, Dialect, Table, and_, bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler

from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models import transitions
from rabbitrun.models.tables import DagRun, TaskAttempt, TaskInstance, XComRow

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


def key_params(key: TaskInstanceKey) -> dict[str, Any]:
    return {
        "k_dag": key.dag_id,
        "k_task": key.task_id,
        "k_run": key.run_id,
        "k_map": key.map_index,
        "k_try": key.try_number,
    }
