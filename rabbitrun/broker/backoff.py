"""A robust connection whose reconnect attempts back off.

aio-pika's :class:`~aio_pika.RobustConnection` waits a fixed
``reconnect_interval`` between attempts. This one waits about as long as the
connection has been down so far — ``reconnect_interval``, then twice that, four
times, ... — capped at ``reconnect_max_interval``: a broker that comes back at
once is found at once, a long outage is not hammered. Declarations and
consumers are still replayed by aio-pika after each reconnect.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aio_pika
from aio_pika.abc import ConnectionParameter
from aiormq.connection import parse_timeout

if TYPE_CHECKING:
    from yarl import URL


class BackoffConnection(aio_pika.RobustConnection):
    PARAMETERS = aio_pika.RobustConnection.PARAMETERS + (
        ConnectionParameter(name="reconnect_max_interval", parser=parse_timeout, default="30"),
    )

    def __init__(self, url: URL, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any) -> None:
        self._min_s = 1.0
        self._lost_at: float | None = None  # loop time the connection was lost; None while connected
        super().__init__(url, loop, **kwargs)  # sets reconnect_interval (the minimum) through the setter
        self._max_s = max(self._min_s, float(self.kwargs.pop("reconnect_max_interval")))

    @property
    def reconnect_interval(self) -> float:
        """The wait before the next attempt: the time down so far, within [minimum, maximum]."""
        if self._lost_at is None:
            return self._min_s
        return min(self._max_s, max(self._min_s, self.loop.time() - self._lost_at))

    @reconnect_interval.setter
    def reconnect_interval(self, value: float) -> None:
        self._min_s = float(value)

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        if self._lost_at is None and not self.close_called:
            self._lost_at = self.loop.time()
        await super()._on_connection_close(closing)

    async def _on_connected(self) -> None:
        await super()._on_connected()  # raises when channels cannot be restored: still down
        self._lost_at = None
