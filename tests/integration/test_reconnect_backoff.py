"""Reconnects back off: a connection to the real broker through a local TCP relay that the test
cuts (only this test's own connection is disturbed), refuses for a while, then restores."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import aio_pika

from rabbitrun.broker.connection import connect
from rabbitrun.settings import BrokerSettings, Secret
from tests.support.relay import Relay

BROKER = ("127.0.0.1", 5672)


def test_lost_connection_retries_with_growing_waits_capped_and_recovers(vhost: str) -> None:
    async def scenario() -> tuple[list[float], bool]:
        relay = Relay(BROKER)
        server = await asyncio.start_server(relay.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        settings = BrokerSettings(
            url=Secret(f"amqp://guest:guest@127.0.0.1:{port}/{quote(vhost, safe='')}"),
            reconnect_min_s=0.2,
            reconnect_max_s=1.6,
        )
        connection = await connect(settings, "test", "reconnect-backoff")
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(exclusive=True)
            relay.cut()
            await asyncio.sleep(6)
            relay.up = True
            await asyncio.wait_for(connection.connected.wait(), 10)
            await asyncio.sleep(0.5)  # the channel and its queue are restored on the new connection
            await channel.default_exchange.publish(aio_pika.Message(b"hi"), routing_key=queue.name)
            got = await queue.get(timeout=5, fail=False)
            return relay.refused_at, got is not None and got.body == b"hi"
        finally:
            await connection.close()
            server.close()

    attempts, recovered = asyncio.run(scenario())
    waits = [b - a for a, b in zip(attempts, attempts[1:])]
    assert recovered
    assert 3 <= len(attempts) <= 12, waits  # a fixed 0.2 s interval would make ~30 attempts in 6 s
    assert waits[-1] > 2 * waits[0], waits  # the waits grow ...
    assert max(waits) < 1.6 + 1.0, waits  # ... up to the cap (generous for a busy machine)
