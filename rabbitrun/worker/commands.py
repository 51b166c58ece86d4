"""What a running worker can be asked over the control exchange: inspect and control commands.

Celery users know them as `celery inspect ...` / `celery control ...`; the
handlers read and change the live worker through :class:`WorkerParts`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rabbitrun.keys import TaskInstanceKey, attempt_log_path
from rabbitrun.names import Names, consumer_tag
from rabbitrun.protocol import ControlRequest, Heartbeat
from rabbitrun.settings import Settings


def _rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class WorkerParts:
    settings: Settings
    names: Names
    hostname: str
    channel: Any
    consumer: Any
    supervisor: Any
    stop: asyncio.Event
    connection_url: str
    prefetch: int
    started_monotonic: float = field(default_factory=time.monotonic)
    queues: dict[str, tuple[Any, str]] = field(default_factory=dict)

    async def add_consumer(self, name: str) -> None:
        if name in self.queues:
            return
        queue = await self.channel.get_queue(self.names.task_queue(name), ensure=True)
        tag = consumer_tag("worker", self.hostname, name)
        await queue.consume(self.consumer.on_message, consumer_tag=tag)
        self.queues[name] = (queue, tag)

    async def cancel_consumer(self, name: str) -> None:
        queue, tag = self.queues.pop(name)
        await queue.cancel(tag)  # unacked deliveries stay valid and are settled as usual

    async def set_prefetch(self, count: int) -> None:
        """basic.qos applies to consumers created after it: re-consume every queue."""
        self.prefetch = count
        await self.channel.set_qos(prefetch_count=count)
        for name in list(self.queues):
            await self.cancel_consumer(name)
            await self.add_consumer(name)

    async def resize(self, capacity: int) -> int:
        await self.consumer.slots.resize(capacity)
        await self.set_prefetch(self.consumer.slots.capacity)
        return int(self.consumer.slots.capacity)

    def active(self) -> list[dict[str, Any]]:
        return [
            {**_key(env.key), "pid": pid, "queue": env.queue, "envelope_id": env.id}
            for env, pid in self.supervisor.running()
        ]

    def heartbeat(self) -> Heartbeat:
        """The heartbeat event: what this worker runs and consumes now."""
        running, capacity = len(self.supervisor.running()), self.consumer.slots.capacity
        return Heartbeat(self.hostname, running, capacity, tuple(sorted(self.queues)), os.getpid())


def _key(key: TaskInstanceKey) -> dict[str, Any]:
    return {
        "dag_id": key.dag_id,
        "task_id": key.task_id,
        "run_id": key.run_id,
        "map_index": key.map_index,
        "try_number": key.try_number,
    }


Handler = Callable[[ControlRequest], Awaitable[Any]]
_T = TypeVar("_T")


def _needs(value: _T | None, what: str) -> _T:
    if value is None:
        raise ValueError(f"this command needs the argument(s) {what}")
    return value


def build_handlers(parts: WorkerParts) -> dict[str, Handler]:
    async def ping(_: ControlRequest) -> str:
        return "pong"

    async def active(_: ControlRequest) -> list[dict[str, Any]]:
        return parts.active()

    async def reserved(_: ControlRequest) -> list[dict[str, Any]]:
        return [{**_key(env.key), "queue": env.queue} for env in parts.consumer.reserved.values()]

    async def stats(_: ControlRequest) -> dict[str, Any]:
        return {
            "tasks": dict(parts.consumer.outcomes),
            "deliveries": dict(parts.consumer.stats),
            "concurrency": parts.consumer.slots.capacity,
            "prefetch": parts.prefetch,
            "busy": parts.consumer.slots.busy,
            "processes": [pid for _, pid in parts.supervisor.running() if pid],
            "zygote_pid": parts.supervisor.zygote_pid,
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - parts.started_monotonic, 1),
            "broker": parts.connection_url,
            "rss_bytes": _rss_bytes(),
        }

    async def active_queues(_: ControlRequest) -> list[dict[str, Any]]:
        return [
            {"name": name, "amqp_queue": queue.name, "consumer_tag": tag}
            for name, (queue, tag) in sorted(parts.queues.items())
        ]

    async def registered(_: ControlRequest) -> list[str]:
        from sqlalchemy import select

        from rabbitrun.models.engine import make_engine, session_factory
        from rabbitrun.models.tables import DagModel

        def dag_ids() -> list[str]:
            with session_factory(make_engine(parts.settings.database, pooled=False))() as session:
                return list(session.execute(select(DagModel.dag_id).order_by(DagModel.dag_id)).scalars())

        return await asyncio.to_thread(dag_ids)

    async def shutdown(_: ControlRequest) -> str:
        parts.stop.set()
        return "warm shutdown started"

    async def add_consumer(request: ControlRequest) -> list[str]:
        await parts.add_consumer(_needs(request.queue, "queue"))
        return sorted(parts.queues)

    async def cancel_consumer(request: ControlRequest) -> list[str]:
        await parts.cancel_consumer(_needs(request.queue, "queue"))
        return sorted(parts.queues)

    def _step(request: ControlRequest) -> int:
        n = 1 if request.n is None else request.n
        ceiling = parts.settings.worker.max_concurrency
        if not 1 <= n <= ceiling:
            raise ValueError(f"n must be between 1 and [worker] max_concurrency ({ceiling}), not {n}")
        return n

    async def pool_grow(request: ControlRequest) -> int:
        target, ceiling = parts.consumer.slots.capacity + _step(request), parts.settings.worker.max_concurrency
        if target > ceiling:
            raise ValueError(f"the pool would reach {target}, above [worker] max_concurrency ({ceiling})")
        return await parts.resize(target)

    async def pool_shrink(request: ControlRequest) -> int:
        return await parts.resize(parts.consumer.slots.capacity - _step(request))

    async def read_log(request: ControlRequest) -> str | None:
        # the path comes from the key alone, resolved inside the log folder (issue 17, finding 1)
        key = _needs(request.key, "dag_id, task_id, run_id and try_number")
        path = attempt_log_path(parts.settings.logging.base_log_folder, key)
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None

    return {
        "ping": ping,
        "active": active,
        "reserved": reserved,
        "stats": stats,
        "active_queues": active_queues,
        "registered": registered,
        "shutdown": shutdown,
        "add_consumer": add_consumer,
        "cancel_consumer": cancel_consumer,
        "pool_grow": pool_grow,
        "pool_shrink": pool_shrink,
        "read_log": read_log,
    }
