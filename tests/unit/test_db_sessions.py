"""DB session policy: pool settings reach the PostgreSQL engine; only transient errors are retried."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from rabbitrun.models.engine import is_transient, make_engine, retrying
from rabbitrun.settings import DatabaseSettings, Secret


def test_pool_settings_are_applied_for_postgresql() -> None:
    db = DatabaseSettings(
        url=Secret("postgresql+psycopg://u@127.0.0.1:1/x"),
        pool_size=7,
        max_overflow=3,
        pool_recycle_s=60,
        pool_pre_ping=False,
    )
    pool = make_engine(db).pool
    assert (pool.size(), pool._max_overflow, pool._recycle, pool._pre_ping) == (7, 3, 60, False)  # type: ignore[attr-defined]


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def test_serialization_failures_are_retried_and_other_errors_are_not() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("UPDATE ...", {}, _Orig("40001"))
        return "done"

    result = None
    for attempt in retrying(DatabaseSettings(retry_attempts=3)):
        with attempt:
            result = flaky()
    assert result == "done" and len(calls) == 3
    assert not is_transient(OperationalError("x", {}, _Orig("28P01")))  # bad password: no retry
    with pytest.raises(OperationalError):
        for attempt in retrying(DatabaseSettings(retry_attempts=2)):
            with attempt:
                raise OperationalError("x", {}, _Orig("40P01"))
