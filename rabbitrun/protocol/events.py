"""Events on the ``rabbitrun.events`` topic exchange: heartbeats, one per step of a delivery, log lines."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

from rabbitrun.errors import InvalidEnvelope
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.protocol.codec import (
    VERSION,
    Wire,
    get,
    key_from,
    key_wire,
    nonempty,
    pack,
    strings,
    unpack,
)
from rabbitrun.protocol.control import ControlReply, ControlRequest
from rabbitrun.states import TaskState

# --- events (rabbitrun.events topic exchange; fire and forget) ------------------------------
#
# ``{"v": 1, "kind": <kind>, "hostname": <worker>, ...}``: worker heartbeats and shutdowns, one
# event per step of a delivery (its routing key names the task), and live log lines.


class _Event:
    """What every event has: its ``kind`` (the wire's "kind", and the last word of its routing key)."""

    __slots__ = ()
    KIND: ClassVar[str]

    @property
    def kind(self) -> str:
        return self.KIND


@dataclass(frozen=True, slots=True)
class Heartbeat(_Event):
    """A worker is alive: what it runs and consumes (every ``heartbeat_interval_s``)."""

    KIND: ClassVar[str] = "heartbeat"
    hostname: str
    active: int
    concurrency: int
    queues: tuple[str, ...]
    pid: int

    def to_wire(self) -> Wire:
        return {
            **_event_head(self.KIND, self.hostname),
            "active": self.active,
            "concurrency": self.concurrency,
            "queues": list(self.queues),
            "pid": self.pid,
        }


@dataclass(frozen=True, slots=True)
class WorkerOffline(_Event):
    """A worker finished its warm shutdown."""

    KIND: ClassVar[str] = "worker_offline"
    hostname: str

    def to_wire(self) -> Wire:
        return _event_head(self.KIND, self.hostname)


@dataclass(frozen=True, slots=True)
class TaskReceived(_Event):
    """A worker received the delivery of ``envelope_id`` (``redelivered``: the broker's flag)."""

    KIND: ClassVar[str] = "received"
    hostname: str
    key: TaskInstanceKey
    envelope_id: str
    redelivered: bool

    def to_wire(self) -> Wire:
        return {**_task_head(self.KIND, self.hostname, self.key, self.envelope_id), "redelivered": self.redelivered}


@dataclass(frozen=True, slots=True)
class TaskStarted(_Event):
    """The delivery got a slot and its task process starts."""

    KIND: ClassVar[str] = "started"
    hostname: str
    key: TaskInstanceKey
    envelope_id: str

    def to_wire(self) -> Wire:
        return _task_head(self.KIND, self.hostname, self.key, self.envelope_id)


@dataclass(frozen=True, slots=True)
class TaskEnded(_Event):
    """The attempt ended in ``state`` and is recorded; the kind follows from the state."""

    KINDS: ClassVar[Mapping[TaskState, str]] = MappingProxyType(
        {
            TaskState.SUCCESS: "succeeded",
            TaskState.FAILED: "failed",
            TaskState.UP_FOR_RETRY: "retried",
            TaskState.SKIPPED: "skipped",
            TaskState.UP_FOR_RESCHEDULE: "rescheduled",
        }
    )
    hostname: str
    key: TaskInstanceKey
    envelope_id: str
    state: TaskState  # one of KINDS
    error: str = ""

    @property
    def kind(self) -> str:
        return self.KINDS[self.state]

    def to_wire(self) -> Wire:
        head = _task_head(self.kind, self.hostname, self.key, self.envelope_id)
        return {**head, "state": self.state.value, "error": self.error}


@dataclass(frozen=True, slots=True)
class TaskRevoked(_Event):
    """The delivery goes back to the queue without an outcome here (shutdown, DB down); ``reason`` says why."""

    KIND: ClassVar[str] = "revoked"
    hostname: str
    key: TaskInstanceKey
    envelope_id: str
    reason: str

    def to_wire(self) -> Wire:
        return {**_task_head(self.KIND, self.hostname, self.key, self.envelope_id), "reason": self.reason}


@dataclass(frozen=True, slots=True)
class TaskTimedOut(_Event):
    """The worker enforced a time limit on the task process: ``limit`` is "soft" or "hard"."""

    KIND: ClassVar[str] = "timed_out"
    hostname: str
    key: TaskInstanceKey
    envelope_id: str
    limit: str

    def to_wire(self) -> Wire:
        return {**_task_head(self.KIND, self.hostname, self.key, self.envelope_id), "limit": self.limit}


@dataclass(frozen=True, slots=True)
class LogLines(_Event):
    """New complete lines of an attempt's log file; ``offset`` is the byte position of the first one
    (None from a worker that sends none)."""

    KIND: ClassVar[str] = "log"
    hostname: str
    key: TaskInstanceKey
    offset: int | None
    lines: tuple[str, ...]

    def to_wire(self) -> Wire:
        key = self.key
        return {
            **_event_head(self.KIND, self.hostname),
            "dag_id": key.dag_id,
            "task_id": key.task_id,
            "run_id": key.run_id,
            "try_number": key.try_number,
            "map_index": key.map_index,
            "offset": self.offset,
            "lines": list(self.lines),
        }


TaskEvent = TaskReceived | TaskStarted | TaskEnded | TaskRevoked | TaskTimedOut
Event = Heartbeat | WorkerOffline | TaskEvent | LogLines


def _event_head(kind: str, hostname: str) -> Wire:
    return {"v": VERSION, "kind": kind, "hostname": hostname}


def _task_head(kind: str, hostname: str, key: TaskInstanceKey, envelope_id: str) -> Wire:
    return {**_event_head(kind, hostname), **key_wire(key), "envelope_id": envelope_id}


def decode_event(body: bytes) -> Event:
    """An event from the events exchange -> its typed event, or a ProtocolError."""
    obj = unpack(body)
    kind = get(obj, "kind", str)
    if kind not in _EVENT_KINDS:
        raise InvalidEnvelope(f"field 'kind' names no event: {kind!r}")
    hostname = get(obj, "hostname", str)
    if kind == Heartbeat.KIND:
        active, concurrency = get(obj, "active", int), get(obj, "concurrency", int)
        return Heartbeat(hostname, active, concurrency, strings(obj, "queues"), get(obj, "pid", int))
    if kind == WorkerOffline.KIND:
        return WorkerOffline(hostname)
    if kind == LogLines.KIND:
        return LogLines(hostname, key_from(obj), get(obj, "offset", int, optional=True), strings(obj, "lines"))
    key, envelope_id = key_from(obj), nonempty(obj, "envelope_id")
    if kind == TaskReceived.KIND:
        return TaskReceived(hostname, key, envelope_id, get(obj, "redelivered", bool))
    if kind == TaskStarted.KIND:
        return TaskStarted(hostname, key, envelope_id)
    if kind == TaskRevoked.KIND:
        return TaskRevoked(hostname, key, envelope_id, get(obj, "reason", str))
    if kind == TaskTimedOut.KIND:
        return TaskTimedOut(hostname, key, envelope_id, get(obj, "limit", str))
    state = get(obj, "state", str)
    if state not in TaskEnded.KINDS or TaskEnded.KINDS[TaskState(state)] != kind:
        raise InvalidEnvelope(f"field 'state' is {state!r}, which does not end in a {kind!r} event")
    return TaskEnded(hostname, key, envelope_id, TaskState(state), get(obj, "error", str))


_EVENT_KINDS = frozenset(
    {
        Heartbeat.KIND,
        WorkerOffline.KIND,
        LogLines.KIND,
        TaskReceived.KIND,
        TaskStarted.KIND,
        TaskRevoked.KIND,
        TaskTimedOut.KIND,
        *TaskEnded.KINDS.values(),
    }
)


def encode_message(message: ControlRequest | ControlReply | Event) -> bytes:
    """A control request or reply, or an event, as the bytes of its AMQP message."""
    return pack(message.to_wire())
