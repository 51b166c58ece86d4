"""Task slots with a capacity that can change at run time, and the autoscaler that changes it.

The slots bound how many task processes run at once, whatever the broker has
delivered. ``--autoscale MAX,MIN`` grows the capacity while deliveries wait for
a slot or messages wait in the queues, and shrinks it back after a quiet spell;
each change also resets the consumers' prefetch to the new capacity plus one
(see :func:`lookahead_prefetch`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("rabbitrun.worker")


class Slots:
    """An asyncio semaphore whose size can be changed (pool-grow / pool-shrink / autoscale).

    ``close()`` (warm shutdown) makes every waiting and later ``acquire()`` return
    False, so a delivery still waiting for a slot is handed back instead of
    starting after the shutdown began.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.busy = 0
        self.waiting = 0
        self.closed = False
        self._cond = asyncio.Condition()

    async def acquire(self) -> bool:
        """Wait for a free slot and take it; False when the slots were closed meanwhile."""
        async with self._cond:
            self.waiting += 1
            try:
                await self._cond.wait_for(lambda: self.closed or self.busy < self.capacity)
            finally:
                self.waiting -= 1
            if self.closed:
                return False
            self.busy += 1
            return True

    async def release(self) -> None:
        async with self._cond:
            self.busy -= 1
            self._cond.notify_all()

    async def close(self) -> None:
        async with self._cond:
            self.closed = True
            self._cond.notify_all()

    async def resize(self, capacity: int) -> None:
        async with self._cond:
            self.capacity = max(1, capacity)
            self._cond.notify_all()


@dataclass(frozen=True, slots=True)
class AutoscaleLimits:
    maximum: int
    minimum: int
    interval_s: float = 1.0
    idle_before_shrink_s: float = 5.0

    @classmethod
    def parse(cls, text: str) -> AutoscaleLimits:
        """Celery's spelling: "MAX,MIN"."""
        from rabbitrun.errors import ConfigError

        try:
            maximum, minimum = (int(p) for p in text.split(","))
        except ValueError as exc:
            raise ConfigError(f"--autoscale wants MAX,MIN (e.g. 8,2), got {text!r}", key="worker.autoscale") from exc
        if not 1 <= minimum <= maximum:
            raise ConfigError(f"--autoscale {text!r}: need 1 <= MIN <= MAX", key="worker.autoscale")
        return cls(maximum, minimum)


def next_capacity(limits: AutoscaleLimits, capacity: int, busy: int, backlog: int, idle_s: float) -> int:
    """Pure decision: grow to meet the backlog, shrink to what is busy after a quiet spell."""
    if backlog > 0 and busy >= capacity:
        return min(limits.maximum, capacity + backlog)
    if backlog == 0 and idle_s >= limits.idle_before_shrink_s and busy < capacity:
        return max(limits.minimum, busy)
    return capacity


def lookahead_prefetch(limits: AutoscaleLimits, capacity: int) -> int:
    """One delivery more than the slots (up to MAX): a delivery waiting for a slot is the
    backlog signal that makes the pool grow; at MAX, prefetch = concurrency again."""
    return min(limits.maximum, capacity + 1)


async def autoscale(
    limits: AutoscaleLimits,
    slots: Slots,
    ready_messages: Callable[[], Awaitable[int]],
    set_prefetch: Callable[[int], Awaitable[None]],
) -> None:
    """Run forever: adjust ``slots`` (and the prefetch) to the backlog."""
    loop = asyncio.get_running_loop()
    last_busy_at = loop.time()
    while True:
        await asyncio.sleep(limits.interval_s)
        if slots.busy >= slots.capacity:
            last_busy_at = loop.time()
        backlog = slots.waiting + await ready_messages()
        new = next_capacity(limits, slots.capacity, slots.busy, backlog, loop.time() - last_busy_at)
        if new != slots.capacity:
            log.info(
                "autoscale: %s -> %s task processes (busy %s, backlog %s)", slots.capacity, new, slots.busy, backlog
            )
            await slots.resize(new)
            await set_prefetch(lookahead_prefetch(limits, new))
            last_busy_at = loop.time()
