"""Fire-and-forget events on the ``rabbitrun.events`` topic exchange (heartbeats, task events,
live log lines). An event that cannot be published is dropped: events inform operators and
must never slow or fail a task."""

from __future__ import annotations

import asyncio
import logging

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from rabbitrun import protocol
from rabbitrun.names import APP_ID, Names

log = logging.getLogger("rabbitrun.events")


class EventPublisher:
    def __init__(self, names: Names, hostname: str) -> None:
        self._names, self.hostname = names, hostname
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def open(self, connection: AbstractConnection) -> None:
        self._channel = await connection.channel(publisher_confirms=False)
        self._exchange = await self._channel.get_exchange(self._names.events_exchange, ensure=False)

    def emit(self, routing_key: str, event: protocol.Event) -> None:
        if self._exchange is None:
            return
        body = protocol.encode_message(event)
        message = aio_pika.Message(
            body,
            content_type=protocol.CONTENT_TYPE,
            type=protocol.EVENT_MESSAGE_TYPE,
            app_id=APP_ID,
            delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
        )
        task = asyncio.get_running_loop().create_task(self._publish(message, routing_key))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _publish(self, message: aio_pika.Message, routing_key: str) -> None:
        assert self._exchange is not None
        try:
            await self._exchange.publish(message, routing_key=routing_key, mandatory=False)  # nobody listening is fine
        except Exception as exc:  # noqa: BLE001 - events are best effort by design
            log.debug("event %s dropped: %s", routing_key, exc)

    async def close(self) -> None:
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=2)
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
