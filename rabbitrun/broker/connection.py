"""Robust, named connections to RabbitMQ.

Every connection carries a name such as ``rabbitrun-worker w1@host`` so the
management UI shows who is who. aio-pika's robust connection replays
declarations and consumers after a reconnect, and reconnects back off
(:mod:`rabbitrun.broker.backoff`); the first connect is retried
with backoff for ``connect_timeout_s`` and then fails with the URL (password
masked) instead of a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from rabbitrun.broker import quiet_logs
from rabbitrun.broker.backoff import BackoffConnection
from rabbitrun.errors import BrokerUnavailable
from rabbitrun.names import connection_name
from rabbitrun.settings import BrokerSettings, mask_url

_RETRYABLE = (OSError, asyncio.TimeoutError, ConnectionError, aio_pika.exceptions.AMQPConnectionError)
_TRANSPORT_LOGGER = quiet_logs.TRANSPORT_LOGGER  # logs each failed connect as an ERROR before raising it


def _not_a_connect_failure(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("error when creating transport")


@contextlib.contextmanager
def _quiet_connect_failures() -> Iterator[None]:
    """While the first connect is retried, the failures are ours to report (once, as
    BrokerUnavailable): drop aiormq's own line per failed try. Reconnects later stay logged."""
    logger = logging.getLogger(_TRANSPORT_LOGGER)
    logger.addFilter(_not_a_connect_failure)
    try:
        yield
    finally:
        logger.removeFilter(_not_a_connect_failure)


async def connect(settings: BrokerSettings, role: str, who: str) -> AbstractRobustConnection:
    """Open a robust connection named after ``role`` and ``who``, or raise BrokerUnavailable."""
    url = str(settings.url)
    name = connection_name(role, who)
    quiet_logs.install()  # a forced close later is one WARNING, not tracebacks
    try:
        with _quiet_connect_failures():
            return await _connect_with_retries(settings, url, name)
    except aio_pika.exceptions.ProbableAuthenticationError as exc:
        raise BrokerUnavailable(mask_url(url), "authentication failed (check user and password)") from exc
    except _RETRYABLE as exc:
        raise BrokerUnavailable(mask_url(url), str(exc) or type(exc).__name__) from exc


async def _connect_with_retries(settings: BrokerSettings, url: str, name: str) -> AbstractRobustConnection:
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(settings.connect_timeout_s),
        wait=wait_exponential(multiplier=0.1, max=1.0),
        retry=retry_if_exception_type(_RETRYABLE),
        reraise=True,
    ):
        with attempt:
            return await aio_pika.connect_robust(
                url,
                client_properties={"connection_name": name},
                timeout=settings.connect_timeout_s,
                heartbeat=settings.heartbeat_s,
                connection_class=BackoffConnection,
                reconnect_interval=settings.reconnect_min_s,
                reconnect_max_interval=settings.reconnect_max_s,
            )
    raise AssertionError("unreachable: tenacity reraises the last error")
