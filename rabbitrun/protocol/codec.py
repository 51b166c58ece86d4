"""The encoding every message shares: msgpack maps tagged ``v`` (1), and the strict field readers.

This is the only module that calls msgpack. Each reader raises :class:`~rabbitrun.errors.InvalidEnvelope`
naming the field, so a refusal says what was wrong (it becomes the dead-letter header).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgpack

from rabbitrun.errors import DecodeError, InvalidEnvelope, UnsupportedVersion
from rabbitrun.keys import TaskInstanceKey, key_problem

VERSION = 1
CONTENT_TYPE = "application/msgpack"
#: Envelopes larger than this are refused before decoding (poison protection).
MAX_MESSAGE_BYTES = 1_048_576
#: Results carry a short error; the log file has the whole story.
MAX_ERROR_CHARS = 2000
PERSISTENT = 2  # AMQP delivery_mode

#: A message as its msgpack map: what ``to_wire`` returns and a decoder reads, never passed around.
Wire = dict[str, Any]


def now() -> datetime:
    return datetime.now(UTC)


def ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def dt(value: object, field_name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEnvelope(f"field {field_name!r} must be a UNIX timestamp, got {type(value).__name__}")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidEnvelope(f"field {field_name!r} is out of range") from exc


def pack(obj: Wire) -> bytes:
    packed: bytes = msgpack.packb(obj, use_bin_type=True)
    return packed


def unpack(body: bytes, limit: int = MAX_MESSAGE_BYTES) -> Wire:
    """Bytes -> a version-1 map (not yet validated field by field), or a ProtocolError."""
    if len(body) > limit:
        raise DecodeError(f"message of {len(body)} bytes exceeds the {limit}-byte limit")
    try:
        obj = msgpack.unpackb(body, raw=False, strict_map_key=True)
    except (ValueError, TypeError, OverflowError, RecursionError, msgpack.UnpackException) as exc:
        # msgpack raises several types for garbage; all of them mean "not msgpack"
        raise DecodeError(f"body is not valid msgpack ({type(exc).__name__})") from exc
    if not isinstance(obj, dict):
        raise DecodeError(f"body is msgpack {type(obj).__name__}, expected a map")
    check_version(obj)
    return obj


def check_version(obj: Mapping[str, Any]) -> None:
    version = obj.get("v")
    if type(version) is not int or version != VERSION:  # not True, not 1.0: the integer 1
        raise UnsupportedVersion(version)


def get(obj: Mapping[str, Any], name: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
    if name not in obj:
        if optional:
            return None
        raise InvalidEnvelope(f"missing field {name!r}")
    value = obj[name]
    if value is None and optional:
        return None
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise InvalidEnvelope(f"field {name!r} must be {names}, got {type(value).__name__}")
    return value


def nonempty(obj: Mapping[str, Any], name: str) -> str:
    value: str = get(obj, name, str)
    if not value or len(value) > 250:
        raise InvalidEnvelope(f"field {name!r} must be a non-empty string of at most 250 characters")
    return value


def key_from(obj: Mapping[str, Any]) -> TaskInstanceKey:
    try_number = get(obj, "try_number", int)
    if try_number < 1:
        raise InvalidEnvelope("field 'try_number' must be at least 1")
    map_index = get(obj, "map_index", int)
    if map_index < -1:
        raise InvalidEnvelope("field 'map_index' must be -1 (not mapped) or a position from 0")
    key = TaskInstanceKey(
        dag_id=nonempty(obj, "dag_id"),
        task_id=nonempty(obj, "task_id"),
        run_id=nonempty(obj, "run_id"),
        map_index=map_index,
        try_number=try_number,
    )
    problem = key_problem(key)  # these ids name log folders: no '/', no '..', no absolute path
    if problem is not None:
        raise InvalidEnvelope(f"bad task instance key: {problem}")
    return key


def strings(obj: Mapping[str, Any], name: str) -> tuple[str, ...]:
    values: list[Any] = get(obj, name, list)
    if not all(isinstance(value, str) for value in values):
        raise InvalidEnvelope(f"field {name!r} must be a list of str")
    return tuple(values)


def key_wire(key: TaskInstanceKey) -> Wire:
    return {
        "dag_id": key.dag_id,
        "task_id": key.task_id,
        "run_id": key.run_id,
        "map_index": key.map_index,
        "try_number": key.try_number,
    }


_LENGTH = struct.Struct("!I")  # the prefix of a frame on the worker's pipes and task channels


def length_prefixed(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


def take_payload(buffer: bytearray, limit: int | None = None, what: str = "frame") -> bytes | None:
    """Take one complete length-prefixed payload off the front of ``buffer`` (mutated in place), or
    None while it is incomplete. One at a time: a caller whose decode of one payload raises leaves
    the frames behind it in the buffer. A ``what`` announced larger than ``limit`` raises at once:
    its bytes are never waited for."""
    if len(buffer) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack_from(buffer)
    if limit is not None and size > limit:
        raise InvalidEnvelope(f"{what} of {size} bytes exceeds {limit}")
    if len(buffer) < _LENGTH.size + size:
        return None
    payload = bytes(buffer[_LENGTH.size : _LENGTH.size + size])
    del buffer[: _LENGTH.size + size]
    return payload
