"""Group commit: what many deliveries ask of the DB at about the same time, done in one transaction.

The worker claims the attempts of the deliveries it receives and records the ends its task
processes report. Each is one compare-and-set, and alone each would pay its own commit (an fsync
on SQLite, a round trip and a WAL flush on PostgreSQL). A :class:`Batcher` runs one batch at a
time in a thread: whatever arrives while a batch runs waits for it and goes in the next one. A
single request goes at once (no timer to wait for); under load, batches grow by themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """``await submit(item)`` -> its result; ``run_batch(items)`` returns one result per item, in
    order. An exception of ``run_batch`` is every item's exception of that batch."""

    def __init__(self, run_batch: Callable[[Sequence[T]], Sequence[R]], *, max_items: int = 256) -> None:
        self._run_batch, self._max_items = run_batch, max_items
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flushing: asyncio.Task[None] | None = None
        self.batches = 0  # how many transactions ran, for `inspect stats`
        self.items = 0

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if self._flushing is None:
            self._flushing = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[: self._max_items], self._pending[self._max_items :]
                try:
                    results = await asyncio.to_thread(self._run_batch, [item for item, _ in batch])
                except Exception as exc:  # noqa: BLE001 - each waiter gets it (the DB is down, ...)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.batches += 1
                self.items += len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._flushing = None
