"""The task channel: the frames between one task process and its worker, on their own socket.

A task process holds no DB URL and no Fernet key (DESIGN.md, "Task process boundary"): it asks its
worker for what it reads and tells it what it writes, as Airflow 3's task SDK asks its supervisor.
Requests are strictly one at a time (the task side holds a lock), each answered by one reply:

- :class:`DataRequest` -> :class:`DataReply`: a Variable or Connection, XCom rows, and the few reads
  sensors and mapped pulls make. Each operation names its arguments and their types (``DATA_OPS``);
  the worker checks them again against the attempt it owns (a task reads XComs of its own DAG run,
  writes only its own).
- :class:`FinishFrame` -> :class:`FinishReply`: how the attempt ended, with its return value stored
  by the task's XCom backend; the worker records it (group-committed with others) and replies
  whether the record stands, before the task runs its callbacks.

The worker's socket end trusts nothing it reads: a frame that does not decode ends the channel and
the attempt is failed by the worker, as for a task process that died.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from rabbitrun.errors import InvalidEnvelope
from rabbitrun.protocol.codec import (
    VERSION,
    Wire,
    dt,
    get,
    length_prefixed,
    nonempty,
    pack,
    strings,
    take_payload,
    ts,
    unpack,
)
from rabbitrun.protocol.frames import OutcomeFrame, decode_outcome_frame

#: XComs up to ``core.max_xcom_size`` (1 MiB by default) plus their framing fit in a frame.
CHANNEL_MAX_BYTES = 8 * 1_048_576


class DataOp(StrEnum):
    GET_VARIABLE = "variable.get"
    SET_VARIABLE = "variable.set"
    DELETE_VARIABLE = "variable.delete"
    GET_CONNECTION = "connection.get"
    XCOM_ROWS = "xcom.rows"
    PUT_XCOM = "xcom.put"
    MAPPED_INDEXES = "mapped_indexes"
    RESCHEDULE_HISTORY = "reschedule_history"
    EXTERNAL_STATES = "external_states"


_OPTIONAL_STR = (str, type(None))

#: The arguments of each operation and their types: a request with any other shape is refused.
DATA_OPS: Mapping[DataOp, Mapping[str, type | tuple[type, ...]]] = {
    DataOp.GET_VARIABLE: {"key": str},
    DataOp.SET_VARIABLE: {"key": str, "value": str, "description": _OPTIONAL_STR},
    DataOp.DELETE_VARIABLE: {"key": str},
    DataOp.GET_CONNECTION: {"conn_id": str},
    DataOp.XCOM_ROWS: {"dag_id": str, "run_id": str, "task_ids": list, "key": str},
    DataOp.PUT_XCOM: {"key": str, "data": bytes, "value_type": str},
    DataOp.MAPPED_INDEXES: {"dag_id": str, "run_id": str, "task_ids": list},
    DataOp.RESCHEDULE_HISTORY: {},
    DataOp.EXTERNAL_STATES: {"dag_id": str, "task_id": _OPTIONAL_STR, "dates": list},
}


@dataclass(frozen=True, slots=True)
class DataRequest:
    """Task -> worker: one read or write the task makes (see ``DATA_OPS`` for the arguments)."""

    KIND: ClassVar[str] = "data"
    op: DataOp
    args: Mapping[str, Any] = field(default_factory=dict)

    def to_wire(self) -> Wire:
        return {"v": VERSION, "k": self.KIND, "op": self.op.value, "args": dict(self.args)}


@dataclass(frozen=True, slots=True)
class DataReply:
    """Worker -> task: the value, or the error to raise in the task (``error_type`` names its class
    among the few a task may catch: VariableNotFound, ConnectionNotFound, XComError, ...)."""

    KIND: ClassVar[str] = "reply"
    value: Any = None
    error: str = ""
    error_type: str = ""

    def to_wire(self) -> Wire:
        return {"v": VERSION, "k": self.KIND, "value": self.value, "error": self.error, "error_type": self.error_type}


@dataclass(frozen=True, slots=True)
class FinishFrame:
    """Task -> worker: how the attempt ended. ``state`` is a TaskState; ``value`` the return value's
    XCom row (bytes, value type) when there is one; ``next_retry_at`` the due time of a retry or
    reschedule; ``reason`` what the attempt history says, ``error`` the short error of the result;
    ``skip`` the task ids of its run it skips with its success (a branch not taken, a short circuit):
    the worker records them only when its envelope's ``may_skip`` holds every one."""

    KIND: ClassVar[str] = "finish"
    state: str
    started_at: datetime
    ended_at: datetime
    reason: str = ""
    error: str = ""
    next_retry_at: datetime | None = None
    value: tuple[bytes, str] | None = None
    skip: tuple[str, ...] = ()

    def to_wire(self) -> Wire:
        return {
            "v": VERSION,
            "k": self.KIND,
            "skip": list(self.skip),
            "state": self.state,
            "started_at": ts(self.started_at),
            "ended_at": ts(self.ended_at),
            "reason": self.reason,
            "error": self.error,
            "next_retry_at": ts(self.next_retry_at),
            "value": list(self.value) if self.value is not None else None,
        }


@dataclass(frozen=True, slots=True)
class FinishReply:
    """Worker -> task: whether its record stands (False: decided elsewhere, e.g. its lease expired),
    and the state recorded (FAILED when its return value could not be stored, with ``error``)."""

    KIND: ClassVar[str] = "finished"
    recorded: bool
    state: str
    error: str = ""

    def to_wire(self) -> Wire:
        return {"v": VERSION, "k": self.KIND, "recorded": self.recorded, "state": self.state, "error": self.error}


#: OutcomeFrame: a task process that cannot run its attempt (its DAG does not load) or crashed says so
ChannelFrame = DataRequest | DataReply | FinishFrame | FinishReply | OutcomeFrame


def encode_channel_frame(frame: ChannelFrame) -> bytes:
    return length_prefixed(pack(frame.to_wire()))


def split_channel_frames(buffer: bytearray) -> list[ChannelFrame]:
    """Take every complete frame off the front of ``buffer`` (mutated in place) and decode it; a
    frame that does not decode raises its ProtocolError (the caller ends the channel)."""
    frames: list[ChannelFrame] = []
    while (payload := take_payload(buffer, CHANNEL_MAX_BYTES, "task channel frame")) is not None:
        frames.append(decode_channel_frame(payload))
    return frames


def decode_channel_frame(payload: bytes) -> ChannelFrame:
    obj = unpack(payload, CHANNEL_MAX_BYTES)
    kind = get(obj, "k", str)
    decode = _DECODERS.get(kind)
    if decode is None:
        raise InvalidEnvelope(f"field 'k' names no task channel frame: {kind!r}")
    return decode(obj)


def _data_request(obj: Mapping[str, Any]) -> DataRequest:
    name = get(obj, "op", str)
    try:
        op = DataOp(name)
    except ValueError:
        raise InvalidEnvelope(f"field 'op' names no data operation: {name!r}") from None
    args = get(obj, "args", dict)
    for arg, kind in DATA_OPS[op].items():
        get(args, arg, kind, optional=isinstance(kind, tuple) and type(None) in kind)
    return DataRequest(op, {arg: args.get(arg) for arg in DATA_OPS[op]})


def _data_reply(obj: Mapping[str, Any]) -> DataReply:
    return DataReply(obj.get("value"), get(obj, "error", str), get(obj, "error_type", str))


def _finish_frame(obj: Mapping[str, Any]) -> FinishFrame:
    value = get(obj, "value", list, optional=True)
    if value is not None and (len(value) != 2 or not isinstance(value[0], bytes) or not isinstance(value[1], str)):
        raise InvalidEnvelope("field 'value' must be [bytes, value type]")
    started = dt(get(obj, "started_at", (int, float)), "started_at")
    ended = dt(get(obj, "ended_at", (int, float)), "ended_at")
    assert started is not None and ended is not None
    return FinishFrame(
        state=nonempty(obj, "state"),
        started_at=started,
        ended_at=ended,
        reason=get(obj, "reason", str),
        error=get(obj, "error", str),
        next_retry_at=dt(get(obj, "next_retry_at", (int, float), optional=True), "next_retry_at"),
        value=(value[0], value[1]) if value is not None else None,
        skip=strings(obj, "skip") if "skip" in obj else (),  # older task processes skip nothing
    )


def _finish_reply(obj: Mapping[str, Any]) -> FinishReply:
    return FinishReply(get(obj, "recorded", bool), nonempty(obj, "state"), get(obj, "error", str))


_DECODERS: Mapping[str, Callable[[Mapping[str, Any]], ChannelFrame]] = {
    DataRequest.KIND: _data_request,
    DataReply.KIND: _data_reply,
    FinishFrame.KIND: _finish_frame,
    FinishReply.KIND: _finish_reply,
    OutcomeFrame.KIND: decode_outcome_frame,
}
