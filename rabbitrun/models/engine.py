"""Engines and sessions for the metadata DB, and the one translation of driver errors.

SQLite runs in WAL mode with ``synchronous=NORMAL``: readers never block the
writer and a commit costs no fsync of the main file, which is what the
embedded default needs for many short task processes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from rabbitrun.errors import DatabaseUnavailable
from rabbitrun.settings import DatabaseSettings, mask_url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(db: DatabaseSettings, *, pooled: bool = True) -> Engine:
    """Build an engine; ``pooled=False`` for short-lived processes such as a task child."""
    url = make_url(str(db.url))
    kwargs: dict[str, Any] = {"future": True}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": db.sqlite_busy_timeout_s}
        if not pooled:
            kwargs["poolclass"] = NullPool
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": max(1, int(db.connect_timeout_s))}
        kwargs["pool_pre_ping"] = db.pool_pre_ping
        kwargs["pool_recycle"] = db.pool_recycle_s
    if pooled:
        kwargs.update(pool_size=db.pool_size, max_overflow=db.max_overflow)
    else:
        kwargs["poolclass"] = NullPool
    return create_engine(url, **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def masked(engine: Engine) -> str:
    return mask_url(engine.url.render_as_string(hide_password=False))


def as_unavailable(exc: BaseException, url: str) -> DatabaseUnavailable | None:
    """The DatabaseUnavailable a driver error stands for (``url`` already masked), or None when
    ``exc`` is not a failure to reach or keep the database."""
    if isinstance(exc, OperationalError):
        cause = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        return DatabaseUnavailable(url, cause)
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return DatabaseUnavailable(url, "connection lost")
    return None


@contextlib.contextmanager
def db_errors(engine: Engine) -> Iterator[None]:
    """Turn a driver's connection failure into DatabaseUnavailable naming the URL."""
    try:
        yield
    except DBAPIError as exc:
        unavailable = as_unavailable(exc, masked(engine))
        if unavailable is None:
            raise
        raise unavailable from exc


def is_transient(exc: BaseException) -> bool:
    """A dropped connection or a serialization failure/deadlock: worth one more try."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return code in ("40001", "40P01", "57P01", "08006", "08003", "08000")


def retrying(db: DatabaseSettings) -> Any:
    """tenacity policy for one DB unit of work (the caller makes it safe to repeat)."""
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

    return Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(max(1, db.retry_attempts)),
        wait=wait_exponential(multiplier=0.05, max=1.0),
        reraise=True,
    )
