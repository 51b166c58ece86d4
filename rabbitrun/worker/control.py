"""The worker's remote control: answers inspect/control requests over AMQP.

Each worker consumes an exclusive, auto-delete queue bound on the
``rabbitrun.control`` topic exchange to ``broadcast`` and ``worker.<hostname>``,
and replies on the requester's ``reply_to`` (RabbitMQ direct reply-to) with
the request's ``correlation_id``. Handlers are plain async functions by command
name, assembled by :mod:`rabbitrun.worker.main`.

Only requests signed with ``[control] secret_key`` are executed
(:mod:`rabbitrun.protocol.control_auth`); anything else is dropped with one
warning line: whoever can publish to the exchange cannot steer the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from rabbitrun import protocol
from rabbitrun.errors import ProtocolError
from rabbitrun.names import APP_ID, CONTROL_BROADCAST, Names, consumer_tag, control_key
from rabbitrun.worker.commands import Handler

log = logging.getLogger("rabbitrun.worker.control")


class ControlServer:
    def __init__(self, names: Names, hostname: str, handlers: Mapping[str, Handler], secret_key: str) -> None:
        self._names, self._hostname, self._handlers = names, hostname, handlers
        self._secret_key = secret_key
        self._nonces = protocol.NonceCache()
        self._channel: AbstractChannel | None = None
        if not secret_key:
            log.warning(
                "no [control] secret_key: every inspect/control request will be refused (run `rabbitrun db init`)"
            )

    async def start(self, connection: AbstractConnection) -> None:
        self._channel = await connection.channel()
        queue = await self._channel.declare_queue(
            self._names.control_queue(self._hostname), exclusive=True, auto_delete=True
        )
        for key in (CONTROL_BROADCAST, control_key(self._hostname)):
            await queue.bind(self._names.control_exchange, routing_key=key)
        await queue.consume(
            self._on_request, no_ack=True, consumer_tag=consumer_tag("worker", self._hostname, "control")
        )

    async def _on_request(self, message: AbstractIncomingMessage) -> None:
        try:
            now = datetime.now(UTC)
            verified = protocol.verify_control_request(message.body, self._secret_key, now=now)
            self._nonces.admit(verified, now=now)
        except ProtocolError as exc:  # never executed; no traceback, no message body in the log
            log.warning(
                "refused a control message (app_id=%r user_id=%r): %s", message.app_id, message.user_id, exc.reason
            )
            return
        request = verified.request
        command = request.command
        handler = self._handlers.get(command)
        try:
            if handler is None:
                raise ValueError(f"unknown command {command!r}; known: {', '.join(sorted(self._handlers))}")
            reply = protocol.ControlReply(self._hostname, command, ok=True, data=await handler(request))
        except Exception as exc:  # noqa: BLE001 - a failing command is answered, never crashes the worker
            reply = protocol.ControlReply(self._hostname, command, ok=False, error=f"{type(exc).__name__}: {exc}")
        if message.reply_to and self._channel is not None:
            body = protocol.encode_message(reply)
            await self._channel.default_exchange.publish(
                aio_pika.Message(
                    body,
                    correlation_id=message.correlation_id,
                    content_type=protocol.CONTENT_TYPE,
                    type=protocol.CONTROL_MESSAGE_TYPE,
                    app_id=APP_ID,
                ),
                routing_key=message.reply_to,
            )

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
