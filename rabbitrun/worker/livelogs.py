"""Live log lines: the worker tails the per-try log files of its running attempts and publishes
new lines on the events exchange (``log.<dag_id>.<task_id>``), so `rabbitrun tasks logs --follow`
works from any machine. The task process itself never touches the broker."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from rabbitrun.keys import log_relpath
from rabbitrun.names import log_key


async def ship_live_logs(supervisor: Any, events: Any, log_folder: Path, interval_s: float = 0.25) -> None:
    offsets: dict[str, int] = {}
    while True:
        await asyncio.sleep(interval_s)
        running = {env.id: env for env, _pid in supervisor.running()}
        for envelope_id in list(offsets):
            if envelope_id not in running:
                del offsets[envelope_id]
        for envelope_id, envelope in running.items():
            path = log_folder / log_relpath(envelope.key)
            try:
                with path.open("rb") as fh:
                    fh.seek(offsets.get(envelope_id, 0))
                    chunk = fh.read(65536)
            except OSError:
                continue
            complete = chunk[: chunk.rfind(b"\n") + 1]
            if not complete:
                continue
            offsets[envelope_id] = offsets.get(envelope_id, 0) + len(complete)
            key = envelope.key
            events.emit(log_key(key.dag_id, key.task_id), "log", dag_id=key.dag_id, task_id=key.task_id,
                        run_id=key.run_id, try_number=key.try_number, map_index=key.map_index,
                        lines=complete.decode("utf-8", "replace").splitlines())
