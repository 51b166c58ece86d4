"""Task instance -> envelope -> confirmed publish; results in from the reply queue.

Publishes are pipelined: every envelope of a batch is in flight at once and the
batch completes when the broker has answered each (confirm, nack or return).
Results are notifications only: the DB already holds the outcome, so a result
is acknowledged as soon as the scheduler has been told.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiormq
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from rabbitrun import protocol
from rabbitrun.broker.publisher import ConfirmedPublisher
from rabbitrun.errors import BrokerError, ProtocolError, SchedulerAlreadyRunning, Unroutable
from rabbitrun.metrics import Metrics
from rabbitrun.names import Names, consumer_tag
from rabbitrun.settings import Settings

log = logging.getLogger("rabbitrun.executor")


@dataclass(frozen=True, slots=True)
class PublishFailure:
    """An envelope the broker did not take (unroutable, not confirmed): the scheduler puts it back."""

    envelope: protocol.TaskEnvelope
    error: Exception


NO_CONSUMER_WARN_EVERY_S = 30.0


class Executor:
    def __init__(
        self, connection: AbstractRobustConnection, names: Names, settings: Settings, metrics: Metrics | None = None
    ) -> None:
        self._connection, self._names, self._settings = connection, names, settings
        self._metrics = metrics
        self.scheduler_id = settings.scheduler.scheduler_id
        self.reply_queue = names.reply_queue(self.scheduler_id)
        self._publisher: ConfirmedPublisher | None = None
        self._channel: AbstractChannel | None = None
        self._warned: dict[str, float] = {}

    async def start(self, on_result: Callable[[protocol.TaskResult], None]) -> None:
        """Open the confirm channel and consume this scheduler's durable reply queue."""
        self._publisher = await ConfirmedPublisher.open(
            self._connection, self._names, self._settings.broker.confirm_timeout_s
        )
        self._channel = await self._connection.channel()
        await self._channel.set_qos(prefetch_count=1000)
        queue = await self._channel.get_queue(self.reply_queue, ensure=True)

        async def handle(message: AbstractIncomingMessage) -> None:
            try:
                result = protocol.decode_result(message.body)
            except ProtocolError as exc:
                log.error("unreadable result on %s: %s; dead-lettering it", self.reply_queue, exc.reason)
                await message.reject(requeue=False)
                return
            on_result(result)
            await message.ack()

        # exclusive: two schedulers with one scheduler_id would take each other's results
        try:
            await queue.consume(
                handle, consumer_tag=consumer_tag("scheduler", self.scheduler_id, "replies"), exclusive=True
            )
        except aiormq.exceptions.ChannelAccessRefused as exc:
            raise SchedulerAlreadyRunning(
                f"another scheduler with scheduler_id {self.scheduler_id!r} is consuming {self.reply_queue}: "
                "give each scheduler its own [scheduler] scheduler_id (or --scheduler-id)"
            ) from exc

    async def publish(self, envelopes: Sequence[protocol.TaskEnvelope]) -> list[PublishFailure]:
        """Publish every envelope with confirms, concurrently; return the ones that failed."""
        assert self._publisher is not None, "start() first"
        max_priority = self._settings.broker.max_priority

        async def one(envelope: protocol.TaskEnvelope) -> PublishFailure | None:
            assert self._publisher is not None
            try:
                await self._publisher.publish(
                    self._names.tasks_exchange,
                    envelope.queue,
                    protocol.encode_envelope(envelope),
                    protocol.envelope_properties(envelope, self.reply_queue, max_priority),
                )
            except BrokerError as exc:
                if self._metrics is not None:
                    (
                        self._metrics.publish_returns if isinstance(exc, Unroutable) else self._metrics.publish_nacks
                    ).inc()
                return PublishFailure(envelope, exc)
            if self._metrics is not None:
                self._metrics.publish_confirms.inc()
            return None

        results = await asyncio.gather(*(one(e) for e in envelopes))
        failures = [r for r in results if r is not None]
        failed_ids = {f.envelope.id for f in failures}
        await self._warn_unconsumed({e.queue for e in envelopes if e.id not in failed_ids})
        return failures

    async def _warn_unconsumed(self, queues: set[str]) -> None:
        """Say at once when a task went to a queue no worker consumes (DESIGN rule 1: never silent)."""
        now = time.monotonic()
        for queue in queues:
            if now - self._warned.get(queue, -NO_CONSUMER_WARN_EVERY_S) < NO_CONSUMER_WARN_EVERY_S:
                continue
            assert self._channel is not None
            try:
                declared = await self._channel.declare_queue(self._names.task_queue(queue), passive=True)
            except Exception as exc:  # noqa: BLE001 - a diagnostic must never break publishing
                log.debug("cannot check consumers of %s: %s", queue, exc)
                continue
            result = declared.declaration_result
            if result.consumer_count == 0:
                self._warned[queue] = now
                log.warning(
                    "queue %r has no consumer (%s messages ready): start a worker with --queues %s; "
                    "tasks stay queued until task_queued_timeout",
                    queue,
                    result.message_count,
                    queue,
                )

    async def close(self) -> None:
        if self._publisher is not None:
            await self._publisher.close()
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
