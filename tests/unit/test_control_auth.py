"""Signed control requests (issue 17, finding 2): only a request signed with the key, inside its time
window and seen once is accepted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rabbitrun import protocol
from rabbitrun.errors import ControlRefused

KEY = "k" * 43
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def signed(request: protocol.ControlRequest, key: str = KEY, at: datetime = NOW, ttl_s: float = 60) -> bytes:
    return protocol.sign_control_request(request, key, now=at, ttl_s=ttl_s)


def test_a_signed_request_verifies_once_and_a_replay_is_refused() -> None:
    request = protocol.ControlRequest("pool_grow", n=2)
    verified = protocol.verify_control_request(signed(request), KEY, now=NOW + timedelta(seconds=5))
    assert verified.request == request
    nonces = protocol.NonceCache()
    nonces.admit(verified, now=NOW)
    with pytest.raises(ControlRefused, match="replayed"):
        nonces.admit(verified, now=NOW)  # the same bytes again


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (protocol.encode_message(protocol.ControlRequest("shutdown")), "unsigned"),
        (signed(protocol.ControlRequest("shutdown"), key="other-key-" * 4), "bad signature"),
        (signed(protocol.ControlRequest("shutdown"), at=NOW - timedelta(seconds=120)), "expired"),
        (signed(protocol.ControlRequest("shutdown"), at=NOW + timedelta(seconds=120)), "future"),
    ],
)
def test_unsigned_forged_and_expired_requests_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(ControlRefused, match=reason):
        protocol.verify_control_request(body, KEY, now=NOW)


def test_a_tampered_payload_breaks_the_signature() -> None:
    body = bytearray(signed(protocol.ControlRequest("pool_grow", n=1)))
    body[body.index(b"pool_grow")] ^= 0x01
    with pytest.raises(ControlRefused, match="bad signature"):
        protocol.verify_control_request(bytes(body), KEY, now=NOW)


def test_without_a_key_nothing_is_signed_or_accepted() -> None:
    with pytest.raises(ControlRefused, match="secret_key"):
        signed(protocol.ControlRequest("ping"), key="")
    with pytest.raises(ControlRefused, match="disabled"):
        protocol.verify_control_request(signed(protocol.ControlRequest("ping")), "", now=NOW)
