"""The fork-per-task ceiling of scripts/bench (issue 6): what this machine allows a worker at best.

A bare aio-pika consumer with the imports a rabbitrun worker has (sqlalchemy, aio_pika), prefetch 2,
forks a no-op child per message (os.fork + os._exit(0)), waits for it without a thread (pidfd) and
acks after the child has exited. The queue is filled first; the clock runs from the first delivery
to the last ack.

    python scripts/bench_ceiling.py AMQP_URL N        -> one JSON line: {"tasks_per_s", "fork_ms"}
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid

import aio_pika
import sqlalchemy  # noqa: F401 - the parent carries what a worker parent carries

PREFETCH = 2


async def main(url: str, n: int) -> dict[str, float]:
    connection = await aio_pika.connect(url, client_properties={"connection_name": "rabbitrun-bench ceiling"})
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"rabbitrun-bench.ceiling.{uuid.uuid4().hex[:8]}", exclusive=True)
        await asyncio.gather(
            *(
                channel.default_exchange.publish(
                    aio_pika.Message(b"x", delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=queue.name
                )
                for _ in range(n)
            )
        )
        await channel.set_qos(prefetch_count=PREFETCH)
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        acked = 0
        fork_s = 0.0
        first: list[float] = []

        async def handle(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal acked, fork_s
            if not first:
                first.append(time.perf_counter())
            started = time.perf_counter()
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            fork_s += time.perf_counter() - started
            pidfd = os.pidfd_open(pid)
            exited = loop.create_future()
            loop.add_reader(pidfd, exited.set_result, None)
            try:
                await exited
            finally:
                loop.remove_reader(pidfd)
                os.close(pidfd)
            os.waitpid(pid, 0)
            await message.ack()
            acked += 1
            if acked == n:
                done.set()

        await queue.consume(handle)
        await done.wait()
        elapsed = time.perf_counter() - first[0]
    return {"tasks_per_s": n / elapsed, "fork_ms": fork_s / n * 1000}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2])))))
