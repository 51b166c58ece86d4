"""Settling a delivery on its channel: ack and nack that survive a closed channel, and the early ack
of a long task (so RabbitMQ's consumer_timeout never fires on a task that is still running)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aio_pika.abc import AbstractIncomingMessage

from rabbitrun import protocol

log = logging.getLogger("rabbitrun.worker")


class EarlyAck:
    """Long task: ack its delivery once it has run ``ack_running_after_s`` and its claim is durable,
    so RabbitMQ's consumer_timeout cannot fire; from then on the attempt is recoverable from the DB
    alone (the worker's heartbeat keeps it alive, the scheduler retries it if that stops).

    The claim can come later than ``ack_running_after_s`` (a zygote still loading DAG files, a
    slow database): the check then repeats every ``_RECHECK_S`` until the task ends, instead of
    giving up after one look and leaving the delivery to the consumer timeout. A timer costs the
    common, short task nothing; ``stop`` waits for an ack in flight, so the settle never acks twice.
    """

    _RECHECK_S = 1.0

    def __init__(
        self,
        message: AbstractIncomingMessage,
        envelope: protocol.TaskEnvelope,
        after_s: float,
        claimed: Callable[[], bool],
    ) -> None:
        self._message, self._envelope, self._after_s, self._claimed = message, envelope, after_s, claimed
        self._loop = asyncio.get_running_loop()
        self._stopped = False
        self._acking: asyncio.Task[None] | None = None
        self._check: asyncio.Task[None] | None = None  # held: the loop keeps only weak references
        self._timer = self._loop.call_later(after_s, self._fire)

    def _fire(self) -> None:
        self._check = self._loop.create_task(self._ack_if_claimed())

    async def _ack_if_claimed(self) -> None:
        try:
            claimed = await asyncio.to_thread(self._claimed)
        except Exception as exc:  # noqa: BLE001 - a DB hiccup: look again later
            log.warning("%s: cannot check its claim for an early ack (%s); checking again", self._envelope.key, exc)
            claimed = False
        if self._stopped:
            return
        if not claimed:
            self._timer = self._loop.call_later(min(self._RECHECK_S, self._after_s), self._fire)
            return
        log.info("%s: running longer than %ss, acknowledging its delivery early", self._envelope.key, self._after_s)
        self._acking = self._loop.create_task(ack(self._message))
        await self._acking

    async def stop(self) -> None:
        """No ack from here on; one already sent is waited for. A check still asking the DB is not
        waited for: it sees the stop when it comes back."""
        self._stopped = True
        self._timer.cancel()
        if self._acking is not None:
            await asyncio.wait([self._acking])


async def ack(message: AbstractIncomingMessage) -> None:
    if message.processed:  # acked early for a long task
        return
    try:
        await message.ack()
    except Exception as exc:  # noqa: BLE001 - channel gone: the broker requeues it, rule 2 keeps it single
        log.warning("ack of %s failed (%s); the broker will redeliver it", message.delivery_tag, exc)


async def nack(message: AbstractIncomingMessage, *, requeue: bool) -> None:
    if message.processed:
        return
    try:
        await message.nack(requeue=requeue)
    except Exception as exc:  # noqa: BLE001 - channel gone: requeued by the broker anyway
        log.warning("nack of %s failed (%s)", message.delivery_tag, exc)
