"""The scheduler's wake-up on a triggered run (rabbitrun.models.wakeup): a datagram on the SQLite
scheduler's socket, NOTIFY/LISTEN on PostgreSQL; best effort on the sending side, and a listener
that survives a stale socket file and a dropped PostgreSQL connection."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from rabbitrun.models import wakeup
from rabbitrun.models.urls import libpq_url
from tests.support.services import PG_URL


async def _nudged(listener: wakeup.Listener, seen: asyncio.Event, nudge: object, timeout_s: float = 10) -> None:
    seen.clear()
    await asyncio.to_thread(nudge)  # type: ignore[arg-type]
    await asyncio.wait_for(seen.wait(), timeout_s)


def test_sqlite_nudge_reaches_the_listener_and_its_socket_goes_with_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rabbitrun.db'}"
    path = wakeup.sqlite_socket(url)
    assert path == tmp_path / "rabbitrun.db.scheduler.sock"
    path.write_text("left by a scheduler that was killed")
    wakeup.nudge_sqlite(url)  # nobody bound: nothing happens, nothing raised

    async def scenario() -> None:
        seen = asyncio.Event()
        listener = wakeup.Listener(url, seen.set)
        await listener.start()  # replaces the stale file
        try:
            await _nudged(listener, seen, lambda: wakeup.nudge_sqlite(url))
            await _nudged(listener, seen, lambda: wakeup.nudge_sqlite(url))  # and again
        finally:
            await listener.close()

    asyncio.run(scenario())
    assert not path.exists()
    wakeup.nudge_sqlite(url)  # the scheduler is gone: still nothing raised


def test_a_socket_path_too_long_for_af_unix_leaves_polling_only(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    url = f"sqlite:///{deep / 'rabbitrun.db'}"
    wakeup.nudge_sqlite(url)

    async def scenario() -> None:
        listener = wakeup.Listener(url, lambda: None)
        await listener.start()
        await listener.close()

    asyncio.run(scenario())


def test_other_urls_have_no_wakeup() -> None:
    assert wakeup.sqlite_socket("sqlite:///:memory:") is None
    assert wakeup.sqlite_socket("postgresql+psycopg://u@h/db") is None
    assert libpq_url("sqlite:///x.db") is None
    assert libpq_url("postgresql+psycopg://u:p@h:5432/db") == "postgresql://u:p@h:5432/db"


def _notify(libpq: str) -> None:
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(wakeup.NOTIFY_SQL)


def test_postgresql_listener_hears_notify_and_listens_again_after_its_connection_drops() -> None:
    libpq = libpq_url(PG_URL)
    if libpq is None:
        pytest.skip("RABBITRUN_TEST_PG_URL is not a postgresql+psycopg URL")

    here = f"datname = current_database() AND query = 'LISTEN {wakeup.CHANNEL}' AND pid <> pg_backend_pid()"

    def listeners() -> set[int]:
        with psycopg.connect(libpq, autocommit=True) as conn:
            return {row[0] for row in conn.execute(f"SELECT pid FROM pg_stat_activity WHERE {here}")}

    def drop(pids: set[int]) -> None:
        with psycopg.connect(libpq, autocommit=True) as conn:
            for pid in pids:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))

    async def listening_on_a_new_backend(old: set[int]) -> set[int]:
        for _ in range(200):
            pids = await asyncio.to_thread(listeners)
            if pids - old:
                return pids - old
            await asyncio.sleep(0.05)
        raise AssertionError("the listener did not LISTEN within 10 s")

    async def scenario() -> None:
        seen = asyncio.Event()
        listener = wakeup.Listener(PG_URL, seen.set)
        await listener.start()
        try:
            first = await listening_on_a_new_backend(set())
            await _nudged(listener, seen, lambda: _notify(libpq))
            await asyncio.to_thread(drop, first)
            await listening_on_a_new_backend(first)  # reconnected and LISTENing again
            await _nudged(listener, seen, lambda: _notify(libpq))
        finally:
            await listener.close()

    asyncio.run(scenario())
