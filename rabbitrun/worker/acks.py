"""Settling a delivery on its channel: ack and nack that survive a closed channel, and the early ack
of a long task (so RabbitMQ's consumer_timeout never fires on a task that is still running)."""

from __future__ import annotations

import asyncio
import logging

from aio_pika.abc import AbstractIncomingMessage

from rabbitrun import protocol

log = logging.getLogger("rabbitrun.worker")


class EarlyAck:
    """Long task: ack its delivery once it has run ``ack_running_after_s``, so RabbitMQ's
    consumer_timeout cannot fire; from then on the attempt is recoverable from the DB alone (the
    worker renews its lease, the scheduler runs it again if that stops).

    The worker claimed the attempt before its task process started, so the claim is durable when
    the timer fires. A timer costs the common, short task nothing; ``stop`` waits for an ack in
    flight, so the settle never acks twice.
    """

    def __init__(self, message: AbstractIncomingMessage, envelope: protocol.TaskEnvelope, after_s: float) -> None:
        self._message, self._envelope, self._after_s = message, envelope, after_s
        self._loop = asyncio.get_running_loop()
        self._acking: asyncio.Task[None] | None = None  # held: the loop keeps only weak references
        self._timer = self._loop.call_later(after_s, self._fire)

    def _fire(self) -> None:
        log.info("%s: running longer than %ss, acknowledging its delivery early", self._envelope.key, self._after_s)
        self._acking = self._loop.create_task(ack(self._message))

    async def stop(self) -> None:
        """No ack from here on; one already sent is waited for."""
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
