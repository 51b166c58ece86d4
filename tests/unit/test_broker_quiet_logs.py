"""A broker's forced close is one WARNING per connection: aiormq's and aio-pika's lines about the same
close are rewritten or dropped, everything else they log passes (issue 15)."""

from __future__ import annotations

import logging

import pytest

from rabbitrun.broker.quiet_logs import CALLBACK_LOGGER, TRANSPORT_LOGGER, BrokerCloseFilter, install

URL = "amqp://guest:******@127.0.0.1:5672/"


def _record(name: str, level: int, msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc else None
    return logging.LogRecord(name, level, __file__, 1, msg, args, exc_info)


def test_the_close_becomes_one_warning_with_the_brokers_reason() -> None:
    record = _record(
        TRANSPORT_LOGGER,
        logging.ERROR,
        'Unexpected connection close from remote "%s", Connection.Close(reply_code=%r, reply_text=%r)',
        URL,
        320,
        "CONNECTION_FORCED - closed by an operator",
    )
    assert BrokerCloseFilter().filter(record)
    assert (record.levelno, record.levelname) == (logging.WARNING, "WARNING")
    assert record.getMessage() == (
        f"the broker closed the connection to {URL} (320 CONNECTION_FORCED - closed by an operator); reconnecting"
    )


class _ChannelOnClose:
    def __repr__(self) -> str:
        return "<OneShotCallback: cb=<bound method RobustChannel._on_close of <RobustChannel>>>"


@pytest.mark.parametrize(
    "record",
    [
        _record(TRANSPORT_LOGGER, logging.WARNING, "Cancelling cause reader exited abnormally", exc=ConnectionError()),
        _record(CALLBACK_LOGGER, logging.ERROR, "Callback %r error: %s: %s", _ChannelOnClose(), "RuntimeError", "x"),
    ],
    ids=["reader-traceback", "channel-close-callback"],
)
def test_the_repeats_of_the_same_close_are_dropped(record: logging.LogRecord) -> None:
    assert not BrokerCloseFilter().filter(record)


@pytest.mark.parametrize(
    "record",
    [
        _record(TRANSPORT_LOGGER, logging.ERROR, "error when creating transport %s", URL),
        _record(CALLBACK_LOGGER, logging.ERROR, "Callback %r error: %s: %s", "<cb=my_consumer>", "KeyError", "x"),
        _record("aio_pika.robust_connection", logging.WARNING, "Connection attempt to %s failed", URL),
    ],
    ids=["connect-failure", "another-callback", "another-logger"],
)
def test_anything_else_passes_unchanged(record: logging.LogRecord) -> None:
    before = (record.levelno, record.getMessage())
    assert BrokerCloseFilter().filter(record)
    assert (record.levelno, record.getMessage()) == before


def test_install_attaches_the_filter_once() -> None:
    install()
    install()
    for name in (TRANSPORT_LOGGER, CALLBACK_LOGGER):
        assert sum(isinstance(f, BrokerCloseFilter) for f in logging.getLogger(name).filters) == 1
