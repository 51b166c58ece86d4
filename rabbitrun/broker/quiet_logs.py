"""What aio-pika and aiormq log when the broker closes a connection, said once and plainly.

A forced close (an operator's ``rabbitmqctl close_connection``, a broker restart, a failover)
makes aiormq log an ERROR and then a WARNING with the ConnectionClosed traceback, and aio-pika an
ERROR per channel whose close callback finds the connection gone; the robust connection then
reconnects and replays its channels and consumers, so nothing is wrong. An operator reading that
would page someone. This filter turns it into one WARNING per closed connection, saying what the
broker said and that it reconnects, and drops the rest (it stays at DEBUG in aio-pika's own
traceback line). Anything else those libraries log passes unchanged.
"""

from __future__ import annotations

import logging

#: The libraries' logger names: what they log here is theirs, the words are ours.
TRANSPORT_LOGGER = "aiormq.connection"
CALLBACK_LOGGER = "aio_pika.tools"

_CLOSED_BY_BROKER = "Unexpected connection close from remote"
_READER_CANCELLED = "Cancelling cause reader exited abnormally"
_CALLBACK_ERROR = "Callback %r error: %s: %s"


class BrokerCloseFilter(logging.Filter):
    """A logging filter for :data:`TRANSPORT_LOGGER` and :data:`CALLBACK_LOGGER`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == TRANSPORT_LOGGER and isinstance(record.msg, str):
            if record.msg.startswith(_CLOSED_BY_BROKER) and isinstance(record.args, tuple) and len(record.args) == 3:
                url, code, text = record.args
                record.levelno, record.levelname = logging.WARNING, "WARNING"
                record.msg = "the broker closed the connection to %s (%s %s); reconnecting"
                record.args = (url, code, text)
                return True
            if record.msg.startswith(_READER_CANCELLED):  # the same close, told again with a traceback
                return False
        if record.name == CALLBACK_LOGGER and record.msg == _CALLBACK_ERROR and isinstance(record.args, tuple):
            return "_on_close" not in repr(record.args[:1])  # a channel's close callback on a closed connection
        return True


_FILTER = BrokerCloseFilter()


def install() -> None:
    """Attach the filter to both loggers (idempotent: a logger holds a filter once)."""
    for name in (TRANSPORT_LOGGER, CALLBACK_LOGGER):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
