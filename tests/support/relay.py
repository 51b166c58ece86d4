"""A TCP relay the tests cut and restore, so one process's connections to a real service (RabbitMQ,
PostgreSQL) break and come back while every other user of that service is undisturbed."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class Relay:
    """Forwards TCP to ``upstream`` while ``up``; otherwise closes each connection attempt at once
    and records when it came, so a test can see the client's reconnect schedule. While
    ``stalled`` it is a black hole instead (a partition that drops packets): connections are
    accepted and bytes read, but nothing is forwarded either way and nothing is closed."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.up = True
        self.stalled = False
        self.refused_at: list[float] = []
        self._pipes: set[asyncio.StreamWriter] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            self.refused_at.append(asyncio.get_running_loop().time())
            writer.close()
            return
        if self.stalled:
            self._pipes.add(writer)
            with contextlib.suppress(OSError):
                while await reader.read(65536):
                    pass
            return
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._pipes.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    if self.stalled:
                        continue  # dropped, as by a partition
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        self.up = False
        self.stalled = False
        for w in self._pipes:
            w.close()
        self._pipes.clear()

    def stall(self) -> None:
        self.stalled = True


class ThreadedRelay:
    """A :class:`Relay` on its own event loop thread, for relaying a subprocess's connections."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.relay = Relay(upstream)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.port = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self.relay.handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self.relay.cut()
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    def cut(self) -> None:
        self._loop.call_soon_threadsafe(self.relay.cut)

    def stall(self) -> None:
        self._loop.call_soon_threadsafe(self.relay.stall)

    def restore(self) -> None:
        """Forward again; connections held by a stall are closed (their bytes were lost)."""

        def restore() -> None:
            if self.relay.stalled:
                self.relay.cut()
            self.relay.up = True

        self._loop.call_soon_threadsafe(restore)

    @classmethod
    @contextlib.contextmanager
    def running(cls, upstream: tuple[str, int]) -> Iterator[ThreadedRelay]:
        relay = cls(upstream)
        relay._thread.start()
        relay._ready.wait(10)
        try:
            yield relay
        finally:
            relay._loop.call_soon_threadsafe(relay._loop.stop)
            relay._thread.join(10)
