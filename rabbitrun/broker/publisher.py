"""Publishing with publisher confirms and ``mandatory``: the one place that turns
broker answers (ack, nack, basic.return) into rabbitrun outcomes.

A task for a queue nothing is bound to comes back as a basic.return and is
raised as :class:`Unroutable` naming the queue, instead of vanishing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq import spec

from rabbitrun.errors import PublishNotConfirmed, Unroutable
from rabbitrun.names import Names


class ConfirmedPublisher:
    """Publishes on its own confirm-mode channel; every publish awaits the broker's answer.

    It hands frames to aiormq's channel directly: aio-pika's Message and Exchange objects and a
    wait_for task per message cost the scheduler 40% of its publishing CPU (measured with
    10,000 envelopes: 0.24 -> 0.14 ms per confirmed message; issue 6, W6). The robust channel still decides which
    underlying channel is current after a reconnect.
    """

    def __init__(self, channel: AbstractChannel, names: Names, confirm_timeout_s: float) -> None:
        self._channel = channel
        self._names = names
        self._timeout_s = confirm_timeout_s

    @classmethod
    async def open(cls, connection: AbstractConnection, names: Names, confirm_timeout_s: float) -> ConfirmedPublisher:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        return cls(channel, names, confirm_timeout_s)

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
        """Publish and wait for the confirm; raise Unroutable or PublishNotConfirmed.

        The timeout covers waiting for a reconnecting channel too: a publish never hangs on a
        broker that is away, the caller puts the work back instead."""
        amqp_properties = _properties(properties, headers)
        try:
            async with asyncio.timeout(self._timeout_s):
                channel = await self._channel.get_underlay_channel()
                await channel.basic_publish(
                    body, exchange=exchange, routing_key=routing_key, properties=amqp_properties, mandatory=mandatory
                )
        except aiormq.exceptions.PublishError as exc:
            queue = self._names.logical_queue(routing_key) or routing_key
            raise Unroutable(exchange, routing_key, queue) from exc
        except aiormq.exceptions.DeliveryError as exc:
            raise PublishNotConfirmed(routing_key, "broker nacked the message") from exc
        except TimeoutError as exc:
            raise PublishNotConfirmed(routing_key, f"no confirm within {self._timeout_s:g}s") from exc
        except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            raise PublishNotConfirmed(routing_key, f"connection problem: {exc!r}") from exc

    async def close(self) -> None:
        if not self._channel.is_closed:
            await self._channel.close()


def _properties(properties: Mapping[str, Any], headers: Mapping[str, Any] | None) -> spec.Basic.Properties:
    """AMQP basic properties from the names DESIGN.md uses (``type`` is AMQP's message type)."""
    fields = {("message_type" if name == "type" else name): value for name, value in properties.items()}
    return spec.Basic.Properties(headers=dict(headers or {}), **fields)
