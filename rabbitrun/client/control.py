"""Inspect/control requests to live workers and the tail of their events, over AMQP.

Replies to control requests come back through RabbitMQ's direct reply-to, so
asking needs no queue of its own; events are read from an exclusive queue bound
on the events exchange for as long as the command runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from rabbitrun import protocol
from rabbitrun.broker.connection import connect
from rabbitrun.errors import ProtocolError, TopologyError
from rabbitrun.names import (
    APP_ID,
    CONTROL_BROADCAST,
    DIRECT_REPLY_TO,
    Names,
    control_key,
)
from rabbitrun.settings import Settings


@contextlib.contextmanager
def topology_declared() -> Iterator[None]:
    """A missing exchange means the topology was never declared here (no worker ever ran either):
    say so with the remedy instead of a raw NOT_FOUND."""
    try:
        yield
    except aio_pika.exceptions.ChannelNotFoundEntity as exc:
        reason = str(exc.args[1] if len(exc.args) > 1 else exc).removeprefix("NOT_FOUND - ")
        raise TopologyError(f"{reason}: run `rabbitrun topology declare`") from exc


async def control(
    settings: Settings,
    command: str,
    args: dict[str, Any] | None = None,
    *,
    destination: str | None = None,
    timeout_s: float = 2.0,
) -> list[protocol.ControlReply]:
    """Send one command to all workers (or ``destination``) and collect replies for ``timeout_s``.

    Arguments of the wrong type raise :class:`~rabbitrun.errors.InvalidEnvelope` before anything is sent.
    """
    request = protocol.ControlRequest.of(command, args or {})
    with topology_declared():
        return await _control(settings, request, destination, timeout_s)


async def _control(
    settings: Settings, request: protocol.ControlRequest, destination: str | None, timeout_s: float
) -> list[protocol.ControlReply]:
    names = Names(settings.broker.prefix)
    connection = await connect(settings.broker, "cli", request.command)
    replies: list[protocol.ControlReply] = []
    done = asyncio.Event()
    correlation_id = uuid.uuid4().hex
    try:
        channel = await connection.channel()
        reply_queue = await channel.get_queue(DIRECT_REPLY_TO, ensure=False)

        async def on_reply(message: AbstractIncomingMessage) -> None:
            if message.correlation_id != correlation_id:
                return
            try:
                replies.append(protocol.decode_control_reply(message.body))
            except ProtocolError:
                return
            if destination is not None:
                done.set()

        await reply_queue.consume(on_reply, no_ack=True)
        exchange = await channel.get_exchange(names.control_exchange, ensure=False)
        ttl_s = settings.control.request_ttl_s
        body = sign_request(request, settings.control.secret_key, ttl_s)
        await exchange.publish(
            aio_pika.Message(
                body,
                reply_to=DIRECT_REPLY_TO,
                correlation_id=correlation_id,
                app_id=APP_ID,
                content_type=protocol.CONTENT_TYPE,
                type=protocol.CONTROL_MESSAGE_TYPE,
                expiration=timeout_s,
            ),
            routing_key=control_key(destination) if destination else CONTROL_BROADCAST,
        )
        try:
            await asyncio.wait_for(done.wait(), timeout_s)
        except TimeoutError:
            pass
    finally:
        await connection.close()
    return sorted(replies, key=lambda reply: reply.hostname)


def sign_request(request: protocol.ControlRequest, secret_key: str, ttl_s: float) -> bytes:
    """The signed bytes of ``request``; no key here is a ConfigError naming the remedy."""
    from rabbitrun.errors import ConfigError, ControlRefused

    try:
        return protocol.sign_control_request(request, secret_key, now=datetime.now(UTC), ttl_s=ttl_s)
    except ControlRefused as exc:
        raise ConfigError(exc.reason, key="control.secret_key") from exc


async def tail(
    settings: Settings,
    patterns: list[str],
    on_event: Callable[[str, protocol.Event], bool | None],
    *,
    duration_s: float | None = None,
) -> None:
    """Deliver events matching the topic ``patterns`` until ``on_event`` returns True or time is up."""
    with topology_declared():
        await _tail(settings, patterns, on_event, duration_s)


async def _tail(
    settings: Settings,
    patterns: list[str],
    on_event: Callable[[str, protocol.Event], bool | None],
    duration_s: float | None,
) -> None:
    names = Names(settings.broker.prefix)
    connection = await connect(settings.broker, "cli", "events")
    finished = asyncio.Event()
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for pattern in patterns:
            await queue.bind(names.events_exchange, routing_key=pattern)

        async def on_message(message: AbstractIncomingMessage) -> None:
            try:
                event = protocol.decode_event(message.body)
            except ProtocolError:
                return
            if on_event(message.routing_key or "", event):
                finished.set()

        await queue.consume(on_message, no_ack=True)
        try:
            await asyncio.wait_for(finished.wait(), duration_s)
        except TimeoutError:
            pass
    finally:
        await connection.close()


async def workers_online(settings: Settings, listen_s: float) -> dict[str, dict[str, Any]]:
    """Workers heard on the events exchange within ``listen_s`` (their heartbeat period + margin)."""
    seen: dict[str, dict[str, Any]] = {}

    def on_event(_key: str, event: protocol.Event) -> None:
        if isinstance(event, protocol.Heartbeat):
            seen[event.hostname] = {**event.to_wire(), "last_heartbeat_at": time.time()}

    await tail(settings, ["worker.*.heartbeat"], on_event, duration_s=listen_s)
    return seen
