"""`dags trigger [--wait]` in plain DB-API SQL, without importing SQLAlchemy.

A trigger is a latency-bound command: its user waits for the run. Importing SQLAlchemy,
the ORM models and the scheduling module costs it ~0.3 s, five times the run of a one-task
DAG (issue 6, W1: command start to run success within 0.5 s). The three statements here
write and read exactly the rows the ORM does (``tests/integration/test_lean_db.py`` checks
that against the Alembic-migrated schema on SQLite and PostgreSQL); any other database URL
(another driver, URL query options) keeps the ORM path. Nothing else should grow here: new
statements belong in the ORM modules.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from rabbitrun.errors import DagError, DatabaseUnavailable
from rabbitrun.keys import validate_run_id
from rabbitrun.models.urls import libpq_url, sqlite_file
from rabbitrun.settings import DatabaseSettings, mask_url


class LeanDB:
    """One DB-API connection to the metadata DB (SQLite or PostgreSQL through psycopg 3)."""

    def __init__(
        self, conn: Any, dialect: str, url: str, integrity_error: type[Exception], driver_error: type[Exception]
    ) -> None:
        self._conn, self.dialect, self._url = conn, dialect, url
        # a duplicate run id; anything else the driver raises means this database cannot be used as
        # it is: connection lost, a locked file, no schema yet (the message says which)
        self._integrity_error, self._driver_error = integrity_error, driver_error

    @classmethod
    def open(cls, db: DatabaseSettings) -> LeanDB | None:
        """Connect, or None when this URL is for the ORM path only."""
        url = str(db.url)
        masked = mask_url(url)
        path, pg_url = sqlite_file(url), libpq_url(url)
        if path is not None:
            import sqlite3

            conn: Any
            try:
                conn = sqlite3.connect(path, timeout=db.sqlite_busy_timeout_s, isolation_level=None, uri=False)
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                raise DatabaseUnavailable(masked, _first_line(exc)) from exc
            return cls(conn, "sqlite", masked, sqlite3.IntegrityError, sqlite3.Error)
        if pg_url is not None:
            import psycopg

            try:
                conn = psycopg.connect(pg_url, autocommit=True, connect_timeout=max(1, int(db.connect_timeout_s)))
            except psycopg.Error as exc:
                raise DatabaseUnavailable(masked, _first_line(exc)) from exc
            return cls(conn, "postgresql", masked, psycopg.IntegrityError, psycopg.Error)
        return None

    def close(self) -> None:
        self._conn.close()

    def dag_registered(self, dag_id: str) -> bool:
        return self._one("SELECT 1 FROM dag WHERE dag_id = {p}", (dag_id,)) is not None

    def insert_queued_run(self, dag_id: str, run_id: str, conf: dict[str, Any], now: datetime) -> None:
        """A QUEUED manual run, as ``models.runs.create_run`` writes it (logical date and data
        interval = now)."""
        validate_run_id(run_id)
        when = self._timestamp(now)
        sql = (
            "INSERT INTO dag_run (dag_id, run_id, state, run_type, logical_date, conf, queued_at,"
            " data_interval_start, data_interval_end) VALUES ({p}, {p}, 'queued', 'manual', {p}, {p}, {p}, {p}, {p})"
        )
        try:
            self._execute(sql, (dag_id, run_id, when, json.dumps(conf), when, when, when))
        except self._integrity_error as exc:
            raise DagError(f"DAG run {run_id!r} of {dag_id!r} already exists") from exc
        self._nudge_scheduler()

    def _nudge_scheduler(self) -> None:
        """Wake the scheduler now rather than at its next poll (best effort, rabbitrun.models.wakeup)."""
        from rabbitrun.models import wakeup

        if self.dialect == "postgresql":
            try:
                self._conn.execute(wakeup.NOTIFY_SQL)
            except self._driver_error:  # the run is written; the poll finds it
                pass
        else:
            wakeup.nudge_sqlite(self._url)

    def run_progress(self, dag_id: str, run_id: str) -> tuple[str | None, dict[str, int]]:
        """The run's state (None: no such run) and its task instances counted by state."""
        row = self._one("SELECT state FROM dag_run WHERE dag_id = {p} AND run_id = {p}", (dag_id, run_id))
        if row is None:
            return None, {}
        rows = self._all(
            "SELECT state, count(*) FROM task_instance WHERE dag_id = {p} AND run_id = {p} GROUP BY state",
            (dag_id, run_id),
        )
        return str(row[0]), {str(state): int(count) for state, count in rows}

    def _timestamp(self, value: datetime) -> Any:
        """SQLite: naive UTC text in SQLAlchemy's DateTime format (what UTCDateTime stores);
        PostgreSQL: the aware datetime for its timestamptz column."""
        value = value.astimezone(UTC)
        if self.dialect == "sqlite":
            return value.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        return value

    def _sql(self, template: str) -> str:
        return template.format(p="?" if self.dialect == "sqlite" else "%s")

    def _execute(self, template: str, params: tuple[Any, ...]) -> Any:
        try:
            return self._conn.execute(self._sql(template), params)
        except self._integrity_error:
            raise
        except self._driver_error as exc:
            raise DatabaseUnavailable(self._url, _first_line(exc)) from exc

    def _one(self, template: str, params: tuple[Any, ...]) -> Any:
        return self._execute(template, params).fetchone()

    def _all(self, template: str, params: tuple[Any, ...]) -> list[Any]:
        return list(self._execute(template, params).fetchall())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    if "no such table" in line or ("relation" in line and "does not exist" in line):
        line += " (run `rabbitrun db init`)"
    return line
