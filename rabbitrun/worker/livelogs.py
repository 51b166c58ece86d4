"""Live log lines: the worker tails the per-try log files of its running attempts and publishes
new lines on the events exchange (``log.<dag_id>.<task_id>``), so `rabbitrun tasks logs --follow`
works from any machine. The task process itself never touches the broker.

Each event carries ``offset``, the byte position of its first line in the file, so a follower
that already printed part of the file skips exactly that part (identical lines are kept).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from rabbitrun import protocol
from rabbitrun.broker.events import EventPublisher
from rabbitrun.keys import log_relpath
from rabbitrun.names import log_key

_READ_MAX_BYTES = 65536
Running = list[tuple[protocol.TaskEnvelope, int | None]]


class LiveLogs:
    """Ships each attempt's new log lines; ``flush`` before its final event so none come after it."""

    def __init__(self, events: EventPublisher, log_folder: Path) -> None:
        self._events, self._log_folder = events, log_folder
        self._shipped: dict[str, tuple[protocol.TaskEnvelope, int]] = {}  # envelope id -> (envelope, bytes)

    def flush(self, envelope: protocol.TaskEnvelope) -> None:
        """Ship every complete line written so far (the consumer calls this before the final event)."""
        self._ship(envelope, final=False)

    def ship_round(self, running: Running) -> None:
        """One pass: new complete lines of running attempts, and everything left of ended ones."""
        now_running = {envelope.id: envelope for envelope, _pid in running}
        for envelope in now_running.values():
            self._ship(envelope, final=False)
        for envelope_id, (envelope, _) in list(self._shipped.items()):
            if envelope_id not in now_running:  # exited: its last line may lack a newline
                self._ship(envelope, final=True)
                del self._shipped[envelope_id]

    def _ship(self, envelope: protocol.TaskEnvelope, *, final: bool) -> None:
        start = self._shipped.get(envelope.id, (envelope, 0))[1]
        path = self._log_folder / log_relpath(envelope.key)
        try:
            with path.open("rb") as fh:
                fh.seek(start)
                chunk = fh.read() if final else fh.read(_READ_MAX_BYTES)
        except OSError:  # not created yet (or gone): nothing to ship
            return
        complete = chunk if final else chunk[: chunk.rfind(b"\n") + 1]
        self._shipped[envelope.id] = (envelope, start + len(complete))
        if not complete:
            return
        key = envelope.key
        lines = tuple(complete.decode("utf-8", "replace").splitlines())
        self._events.emit(log_key(key.dag_id, key.task_id), protocol.LogLines(self._events.hostname, key, start, lines))


class RunningSource(Protocol):
    """What the shipper needs of the supervisor."""

    def running(self) -> Running: ...


async def ship_live_logs(live_logs: LiveLogs, source: RunningSource, interval_s: float = 0.25) -> None:
    """The worker's background task around :meth:`LiveLogs.ship_round`."""
    while True:
        await asyncio.sleep(interval_s)
        live_logs.ship_round(source.running())
