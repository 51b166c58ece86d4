"""The wire format, version 1: task envelopes, results and worker-internal frames.

This is the only module that calls msgpack. Executor and worker both import it;
neither builds dicts for the wire by hand. Decoding is strict: anything that is
not a well-formed version-1 message raises a :class:`ProtocolError` whose
``reason`` becomes the dead-letter header (DESIGN.md, Wire protocol).
"""

from __future__ import annotations

import math
import posixpath
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgpack

from rabbitrun.errors import DecodeError, InvalidEnvelope, ProtocolError, UnsupportedVersion
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.names import APP_ID, RESULT_MESSAGE_TYPE, TASK_MESSAGE_TYPE

VERSION = 1
CONTENT_TYPE = "application/msgpack"
#: Envelopes larger than this are refused before decoding (poison protection).
MAX_MESSAGE_BYTES = 1_048_576
#: Results carry a short error; the log file has the whole story.
MAX_ERROR_CHARS = 2000
PERSISTENT = 2  # AMQP delivery_mode

#: A message as its msgpack map: what ``to_wire`` returns and a decoder reads, never passed around.
Wire = dict[str, Any]


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _dt(value: object, field_name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEnvelope(f"field {field_name!r} must be a UNIX timestamp, got {type(value).__name__}")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidEnvelope(f"field {field_name!r} is out of range") from exc


@dataclass(frozen=True, slots=True)
class TaskEnvelope:
    """A work order for one attempt. It names a task to run, never a command."""

    id: str
    key: TaskInstanceKey
    dag_file: str  # relative to the dags folder, or "@examples/<file>"
    queue: str
    priority: int = 0
    execution_timeout_s: float | None = None
    enqueued_at: datetime = field(default_factory=_now)
    # this try's retry delay, for the worker that records a death its child could not (SIGKILL, OOM)
    retry_delay_s: float = 0.0

    def to_wire(self) -> Wire:
        return {
            "v": VERSION,
            "id": self.id,
            "dag_id": self.key.dag_id,
            "task_id": self.key.task_id,
            "run_id": self.key.run_id,
            "map_index": self.key.map_index,
            "try_number": self.key.try_number,
            "dag_file": self.dag_file,
            "queue": self.queue,
            "priority": self.priority,
            "execution_timeout_s": self.execution_timeout_s,
            "enqueued_at": _ts(self.enqueued_at),
            "retry_delay_s": self.retry_delay_s,
        }


@dataclass(frozen=True, slots=True)
class TaskResult:
    """What a worker reports on ``reply_to`` once an attempt is durable in the DB."""

    envelope_id: str
    key: TaskInstanceKey
    state: str
    exit_code: int | None
    hostname: str
    started_at: datetime | None
    ended_at: datetime | None
    error: str = ""

    def to_wire(self) -> Wire:
        return {
            "v": VERSION,
            "envelope_id": self.envelope_id,
            "dag_id": self.key.dag_id,
            "task_id": self.key.task_id,
            "run_id": self.key.run_id,
            "map_index": self.key.map_index,
            "try_number": self.key.try_number,
            "state": self.state,
            "exit_code": self.exit_code,
            "hostname": self.hostname,
            "started_at": _ts(self.started_at),
            "ended_at": _ts(self.ended_at),
            "error": self.error[:MAX_ERROR_CHARS],
        }


# --- encoding ----------------------------------------------------------------


def _pack(obj: Wire) -> bytes:
    packed: bytes = msgpack.packb(obj, use_bin_type=True)
    return packed


def _unpack(body: bytes) -> Wire:
    """Bytes -> a version-1 map (not yet validated field by field), or a ProtocolError."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise DecodeError(f"message of {len(body)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")
    try:
        obj = msgpack.unpackb(body, raw=False, strict_map_key=True)
    except (ValueError, TypeError, OverflowError, RecursionError, msgpack.UnpackException) as exc:
        # msgpack raises several types for garbage; all of them mean "not msgpack"
        raise DecodeError(f"body is not valid msgpack ({type(exc).__name__})") from exc
    if not isinstance(obj, dict):
        raise DecodeError(f"body is msgpack {type(obj).__name__}, expected a map")
    _check_version(obj)
    return obj


def _check_version(obj: Mapping[str, Any]) -> None:
    version = obj.get("v")
    if type(version) is not int or version != VERSION:  # not True, not 1.0: the integer 1
        raise UnsupportedVersion(version)


def encode_envelope(envelope: TaskEnvelope) -> bytes:
    return _pack(envelope.to_wire())


def encode_result(result: TaskResult) -> bytes:
    return _pack(result.to_wire())


def _get(obj: Mapping[str, Any], name: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
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


def _nonempty(obj: Mapping[str, Any], name: str) -> str:
    value: str = _get(obj, name, str)
    if not value or len(value) > 250:
        raise InvalidEnvelope(f"field {name!r} must be a non-empty string of at most 250 characters")
    return value


def _key(obj: Mapping[str, Any]) -> TaskInstanceKey:
    try_number = _get(obj, "try_number", int)
    if try_number < 1:
        raise InvalidEnvelope("field 'try_number' must be at least 1")
    map_index = _get(obj, "map_index", int)
    if map_index < -1:
        raise InvalidEnvelope("field 'map_index' must be -1 (not mapped) or a position from 0")
    return TaskInstanceKey(
        dag_id=_nonempty(obj, "dag_id"),
        task_id=_nonempty(obj, "task_id"),
        run_id=_nonempty(obj, "run_id"),
        map_index=map_index,
        try_number=try_number,
    )


def check_dag_file(dag_file: str) -> str:
    """Refuse DAG file references that could leave the dags folder.

    This is the pure half of the check; the worker also resolves symlinks
    against the real folder before importing anything.
    """
    if not dag_file or "\x00" in dag_file or "\\" in dag_file:
        raise InvalidEnvelope(f"DAG file path {dag_file!r} is not a plain relative path")
    path = dag_file.removeprefix("@examples/")
    normalized = posixpath.normpath(path)
    if path.startswith("/") or normalized == ".." or normalized.startswith("../") or not path.endswith(".py"):
        raise InvalidEnvelope(f"DAG file path {dag_file!r} escapes the dags folder")
    return dag_file


def decode_envelope(body: bytes) -> TaskEnvelope:
    """Bytes from the broker -> a validated envelope, or a ProtocolError with a reason."""
    return _envelope_from(_unpack(body))


def _envelope_from(obj: Mapping[str, Any]) -> TaskEnvelope:
    _check_version(obj)  # again for an envelope inside a worker frame
    timeout = _get(obj, "execution_timeout_s", (int, float), optional=True)
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        # NaN <= 0 is False, so finiteness is checked first: timers armed with NaN or inf never fire
        raise InvalidEnvelope("field 'execution_timeout_s' must be a positive, finite number of seconds")
    enqueued_at = _dt(_get(obj, "enqueued_at", (int, float)), "enqueued_at")
    assert enqueued_at is not None
    retry_delay = _get(obj, "retry_delay_s", (int, float), optional=True)  # optional: older senders
    if retry_delay is not None and not 0 <= retry_delay < 1e9:
        raise InvalidEnvelope("field 'retry_delay_s' must be a non-negative number of seconds")
    return TaskEnvelope(
        id=_nonempty(obj, "id"),
        key=_key(obj),
        dag_file=check_dag_file(_get(obj, "dag_file", str)),
        queue=_nonempty(obj, "queue"),
        priority=_get(obj, "priority", int),
        execution_timeout_s=float(timeout) if timeout is not None else None,
        enqueued_at=enqueued_at,
        retry_delay_s=float(retry_delay or 0.0),
    )


def decode_result(body: bytes) -> TaskResult:
    obj = _unpack(body)
    exit_code = _get(obj, "exit_code", int, optional=True)
    return TaskResult(
        envelope_id=_nonempty(obj, "envelope_id"),
        key=_key(obj),
        state=_nonempty(obj, "state"),
        exit_code=exit_code,
        hostname=_get(obj, "hostname", str),
        started_at=_dt(_get(obj, "started_at", (int, float), optional=True), "started_at"),
        ended_at=_dt(_get(obj, "ended_at", (int, float), optional=True), "ended_at"),
        error=_get(obj, "error", str),
    )


# --- AMQP properties -----------------------------------------------------------


def envelope_properties(envelope: TaskEnvelope, reply_to: str, max_priority: int) -> dict[str, Any]:
    """The AMQP properties DESIGN.md fixes for a task envelope (aio-pika Message kwargs)."""
    return {
        "content_type": CONTENT_TYPE,
        "delivery_mode": PERSISTENT,
        "message_id": envelope.id,
        "correlation_id": envelope.id,
        "reply_to": reply_to,
        "priority": amqp_priority(envelope.priority, max_priority),
        "type": TASK_MESSAGE_TYPE,
        "app_id": APP_ID,
        "timestamp": envelope.enqueued_at,
    }


def result_properties(result: TaskResult) -> dict[str, Any]:
    return {
        "content_type": CONTENT_TYPE,
        "delivery_mode": PERSISTENT,
        "correlation_id": result.envelope_id,
        "type": RESULT_MESSAGE_TYPE,
        "app_id": APP_ID,
        "timestamp": _now(),
    }


def amqp_priority(priority_weight: int, max_priority: int) -> int:
    """Clamp Airflow's unbounded priority_weight into the queue's 0..max_priority."""
    return max(0, min(int(priority_weight), max_priority))


# --- worker-internal frames (asyncio consumer <-> zygote <-> task child) ----------

_LEN = struct.Struct("!I")


def encode_frame(kind: str, **fields: Any) -> bytes:
    """A length-prefixed msgpack frame for the worker's pipes (never sent to the broker)."""
    payload = _pack({"k": kind, **fields})
    return _LEN.pack(len(payload)) + payload


def split_frames(buffer: bytearray) -> list[dict[str, Any]]:
    """Take every complete frame off the front of ``buffer`` (mutated in place)."""
    frames = []
    while len(buffer) >= _LEN.size:
        (size,) = _LEN.unpack_from(buffer)
        if len(buffer) < _LEN.size + size:
            break
        payload = bytes(buffer[_LEN.size : _LEN.size + size])
        del buffer[: _LEN.size + size]
        obj = msgpack.unpackb(payload, raw=False)
        if not isinstance(obj, dict):
            raise ProtocolError("worker frame is not a map")
        frames.append(obj)
    return frames


def envelope_from_frame(frame: Mapping[str, Any]) -> TaskEnvelope:
    """Rebuild an envelope passed to the zygote inside a frame."""
    return decode_envelope(_pack(frame["envelope"]))


def frame_fields(envelope: TaskEnvelope) -> dict[str, Any]:
    return {"envelope": envelope.to_wire()}


# --- control requests/replies and events (small maps, version-tagged) ----------------------------

CONTROL_MESSAGE_TYPE = "rabbitrun.control"
EVENT_MESSAGE_TYPE = "rabbitrun.event"


def encode_message(kind: str, **fields: Any) -> bytes:
    """A control request or reply, or an event: ``{"v": 1, "kind": ..., **fields}``."""
    return _pack({"v": VERSION, "kind": kind, **fields})


def decode_message(body: bytes) -> dict[str, Any]:
    """Decode a control/event message; raises ProtocolError when it is not one."""
    obj = _unpack(body)
    if not isinstance(obj.get("kind"), str):
        raise InvalidEnvelope("missing field 'kind'")
    return obj


__all__ = [
    "CONTENT_TYPE",
    "VERSION",
    "TaskEnvelope",
    "TaskResult",
    "amqp_priority",
    "check_dag_file",
    "decode_envelope",
    "decode_result",
    "encode_envelope",
    "encode_frame",
    "encode_result",
    "envelope_from_frame",
    "envelope_properties",
    "frame_fields",
    "result_properties",
    "split_frames",
]
