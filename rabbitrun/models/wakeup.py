"""A triggered run wakes the scheduler at once instead of at its next poll.

`dags trigger` writes a QUEUED run to the DB; the scheduler would see it within
``new_run_check_s`` (a cheap indexed poll, 50 ms by default, kept as the safety
net). That wait was most of a one-task run's latency (issue 6, W1/W2), so the
trigger also nudges the scheduler:

- PostgreSQL: ``NOTIFY rabbitrun_new_run``; every scheduler, on any host, LISTENs.
- SQLite (one scheduler, on the DB's host): a datagram on the UNIX socket
  ``<db file>.scheduler.sock``, bound by the scheduler that holds the SQLite
  scheduler lock.

A nudge is best effort: nobody listening, a socket path too long for AF_UNIX
or a lost notification only means the poll finds the run. The client side
imports neither SQLAlchemy nor aio-pika (``dags trigger`` start-up stays lean).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rabbitrun.models.urls import libpq_url, sqlite_file

CHANNEL = "rabbitrun_new_run"
NOTIFY_SQL = f"NOTIFY {CHANNEL}"
SOCKET_SUFFIX = ".scheduler.sock"
_RECONNECT_S = (0.5, 1.0, 2.0, 5.0, 10.0)

log = logging.getLogger("rabbitrun.wakeup")


def sqlite_socket(url: str) -> Path | None:
    """The scheduler's wake-up socket for a SQLite file URL; None for anything else."""
    path = sqlite_file(url)
    return Path(path + SOCKET_SUFFIX) if path is not None else None


def nudge_sqlite(url: str) -> None:
    """Tell the SQLite scheduler a run was created (no scheduler, no socket: nothing to do)."""
    path = sqlite_socket(url)
    if path is None:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        try:
            sock.sendto(b"run", str(path))
        except OSError:  # not running, not ours, path too long, buffer full: the poll finds the run
            pass


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, on_new_run: Callable[[], None]) -> None:
        self._on_new_run = on_new_run

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._on_new_run()


class Listener:
    """The scheduler's side: calls ``on_new_run`` (on the event loop) for every nudge."""

    def __init__(self, url: str, on_new_run: Callable[[], None]) -> None:
        self._url, self._on_new_run = url, on_new_run
        self._transport: asyncio.BaseTransport | None = None
        self._socket: Path | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        path, pg_url = sqlite_socket(self._url), libpq_url(self._url)
        if path is not None:
            await self._bind(path)
        elif pg_url is not None:
            self._task = asyncio.create_task(self._listen(pg_url), name="rabbitrun-wakeup")

    async def _bind(self, path: Path) -> None:
        """Bind the socket (the caller holds the SQLite scheduler lock: a file left there is stale)."""
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        try:
            self._transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: _Datagrams(self._on_new_run), local_addr=str(path), family=socket.AF_UNIX
            )
        except OSError as exc:  # e.g. a path longer than AF_UNIX allows: triggers wait for the poll
            log.warning("no wake-up socket at %s (%s): new runs are found by polling", path, exc)
            return
        path.chmod(0o600)  # only this account nudges its scheduler
        self._socket = path

    async def _listen(self, pg_url: str) -> None:
        """LISTEN on a connection of its own; reconnect with backoff when it drops."""
        import psycopg

        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True, connect_timeout=5) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    failures = 0
                    async for _ in conn.notifies():
                        self._on_new_run()
            except psycopg.Error as exc:
                wait_s = _RECONNECT_S[min(failures, len(_RECONNECT_S) - 1)]
                failures += 1
                log.debug("wake-up listener: %s; again in %.1f s (new runs are found by polling)", exc, wait_s)
                await asyncio.sleep(wait_s)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._transport is not None:
            self._transport.close()
        if self._socket is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._socket)
