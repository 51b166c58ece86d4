"""Publishing with publisher confirms and ``mandatory``: the one place that turns
broker answers (ack, nack, basic.return) into rabbitrun outcomes.

A task for a queue nothing is bound to comes back as a basic.return and is
raised as :class:`Unroutable` naming the queue, instead of vanishing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from rabbitrun.errors import PublishNotConfirmed, Unroutable
from rabbitrun.names import Names


class ConfirmedPublisher:
    """Publishes on its own confirm-mode channel; every publish awaits the broker's answer."""

    def __init__(self, channel: AbstractChannel, names: Names, confirm_timeout_s: float) -> None:
        self._channel = channel
        self._names = names
        self._timeout_s = confirm_timeout_s
        self._exchanges: dict[str, AbstractExchange] = {}

    @classmethod
    async def open(cls, connection: AbstractConnection, names: Names, confirm_timeout_s: float) -> ConfirmedPublisher:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        return cls(channel, names, confirm_timeout_s)

    async def _exchange(self, name: str) -> AbstractExchange:
        if name == "":
            return self._channel.default_exchange
        if name not in self._exchanges:
            self._exchanges[name] = await self._channel.get_exchange(name, ensure=False)
        return self._exchanges[name]

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: Mapping[str, Any],
        *,
        headers: Mapping[str, Any] | None = None,
        mandatory: bool = True,
    ) -> None:
        """Publish and wait for the confirm; raise Unroutable or PublishNotConfirmed."""
        message = aio_pika.Message(body, headers=dict(headers or {}), **properties)
        target = await self._exchange(exchange)
        try:
            await asyncio.wait_for(
                target.publish(message, routing_key=routing_key, mandatory=mandatory), self._timeout_s
            )
        except aio_pika.exceptions.PublishError as exc:
            queue = self._names.logical_queue(routing_key) or routing_key
            raise Unroutable(exchange, routing_key, queue) from exc
        except aio_pika.exceptions.DeliveryError as exc:
            raise PublishNotConfirmed(routing_key, "broker nacked the message") from exc
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise PublishNotConfirmed(routing_key, f"no confirm within {self._timeout_s:g}s") from exc
        except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            raise PublishNotConfirmed(routing_key, f"connection problem: {exc!r}") from exc

    async def close(self) -> None:
        if not self._channel.is_closed:
            await self._channel.close()
