"""Signed control requests: an HMAC-SHA256 over the exact request bytes, with an expiry and a nonce.

Anyone who may publish to the control exchange (every holder of the broker URL) could otherwise shut
down workers or resize their pools. A request is executed only when it carries a valid signature
made with ``[control] secret_key``, which operators and workers hold and task processes do not.

Wire (auth version 1)::

    {"v": 1, "kind": "signed", "auth": 1, "payload": <bytes>, "sig": <32 bytes>}
    payload = msgpack {"v": 1, "kind": <command>, "args": {...},
                       "issued_at": <unix s>, "expires_at": <unix s>, "nonce": <hex>}
    sig = HMAC-SHA256(secret_key, payload)

The signature covers the payload bytes as sent, so there is no re-encoding to agree on. The
receiver checks the signature before decoding the payload's command, then the time window, then
the nonce (remembered until its expiry by :class:`NonceCache`, so a captured request cannot be
replayed). An unsigned (plain version-1) request is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from rabbitrun.errors import ControlRefused
from rabbitrun.protocol.codec import Wire, get, pack, unpack
from rabbitrun.protocol.control import ControlRequest, control_request_from

AUTH_VERSION = 1
SIGNED_KIND = "signed"
#: The longest lifetime a signer may give a request, and how far a clock may run ahead.
MAX_TTL_S = 300.0
MAX_CLOCK_SKEW_S = 30.0
_SIG_BYTES = hashlib.sha256().digest_size


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    """A request whose signature and time window were checked; its nonce is still to be checked."""

    request: ControlRequest
    nonce: str
    expires_at: float


def _mac(secret_key: str, payload: bytes) -> bytes:
    return hmac.new(secret_key.encode(), payload, hashlib.sha256).digest()


def sign_control_request(
    request: ControlRequest, secret_key: str, *, now: datetime, ttl_s: float, nonce: str | None = None
) -> bytes:
    """The bytes of ``request`` signed with ``secret_key``, valid from ``now`` for ``ttl_s``."""
    if not secret_key:
        raise ControlRefused("no [control] secret_key is configured: run `rabbitrun db init` on this home")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ControlRefused(f"a control request lives between 0 and {MAX_TTL_S:g}s, not {ttl_s:g}s")
    issued = now.timestamp()
    wire: Wire = {
        **request.to_wire(),
        "issued_at": issued,
        "expires_at": issued + ttl_s,
        "nonce": nonce or secrets.token_hex(16),
    }
    payload = pack(wire)
    return pack(
        {"v": 1, "kind": SIGNED_KIND, "auth": AUTH_VERSION, "payload": payload, "sig": _mac(secret_key, payload)}
    )


def verify_control_request(body: bytes, secret_key: str, *, now: datetime) -> VerifiedRequest:
    """The request in ``body`` if it is signed with ``secret_key`` and valid at ``now``, else
    :class:`ControlRefused` (or another ProtocolError for bytes that do not decode)."""
    if not secret_key:
        raise ControlRefused("this worker has no [control] secret_key: control requests are disabled")
    outer = unpack(body)
    if outer.get("kind") != SIGNED_KIND:
        raise ControlRefused(f"unsigned control request {str(outer.get('kind'))[:40]!r}")
    if get(outer, "auth", int) != AUTH_VERSION:
        raise ControlRefused(f"unsupported control auth version {outer.get('auth')!r}")
    payload, sig = get(outer, "payload", bytes), get(outer, "sig", bytes)
    if len(sig) != _SIG_BYTES or not hmac.compare_digest(sig, _mac(secret_key, payload)):
        raise ControlRefused("bad signature (not signed with this worker's [control] secret_key)")
    inner = unpack(payload)
    issued, expires = get(inner, "issued_at", (int, float)), get(inner, "expires_at", (int, float))
    nonce = get(inner, "nonce", str)
    at = now.timestamp()
    if expires <= at:
        raise ControlRefused(f"expired {at - expires:.0f}s ago")
    if issued > at + MAX_CLOCK_SKEW_S or expires - issued > MAX_TTL_S:
        raise ControlRefused("issued in the future or valid for too long")
    if not 8 <= len(nonce) <= 64:
        raise ControlRefused("bad nonce")
    return VerifiedRequest(control_request_from(inner), nonce, float(expires))


class NonceCache:
    """Nonces seen within their validity window: a second use of one is a replay.

    Entries go once their request expires, so the cache holds at most the requests of the last
    :data:`MAX_TTL_S`; ``max_entries`` bounds it even under a flood of valid requests.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self._seen: dict[str, float] = {}
        self._max = max_entries

    def admit(self, verified: VerifiedRequest, *, now: datetime) -> None:
        """Remember the request's nonce, or raise :class:`ControlRefused` if it was seen or full."""
        at = now.timestamp()
        if len(self._seen) >= self._max or len(self._seen) % 1024 == 0:
            self._seen = {nonce: expires for nonce, expires in self._seen.items() if expires > at}
        if verified.nonce in self._seen:
            raise ControlRefused("replayed (its nonce was already used)")
        if len(self._seen) >= self._max:
            raise ControlRefused("too many control requests in the validity window")
        self._seen[verified.nonce] = verified.expires_at
