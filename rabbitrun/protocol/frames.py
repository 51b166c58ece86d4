"""Frames on the worker's own pipes (asyncio parent <-> zygote <-> task process), never on the broker.

Length-prefixed so a reader can split a byte stream; each frame is one ``write`` under PIPE_BUF, so
frames from many task processes on one pipe never interleave.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
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
    take_payload,
    ts,
    unpack,
)
from rabbitrun.protocol.tasks import TaskEnvelope, envelope_from

# --- worker-internal frames (asyncio consumer <-> zygote <-> task child) ----------
#
# ``{"v": 1, "k": <kind>, ...}`` behind a 4-byte length, on the worker's own pipes (never the broker).
# The parent writes run/stop to the zygote, the zygote hands a run frame to the spare child that runs
# it and writes started/exited back; each child writes its own outcome frame to that same pipe.
# A frame names its delivery by the supervisor's run token (the wire key is "token" in run frames,
# "id" in the others).


@dataclass(frozen=True, slots=True)
class ClaimedAttempt:
    """What the worker's claim read for the attempt; it rides in the run frame, so the task process
    reads no DB. ``run`` is the DAG run row (conf, logical date, data interval, ...)."""

    max_tries: int
    queue: str
    started_at: datetime
    run: Mapping[str, Any]

    def to_wire(self) -> Wire:
        dates = [name for name, value in self.run.items() if isinstance(value, datetime)]
        run = {name: ts(value) if name in dates else value for name, value in self.run.items()}
        return {
            "max_tries": self.max_tries,
            "queue": self.queue,
            "started_at": ts(self.started_at),
            "run": run,
            "dates": dates,
        }


def _claimed_attempt(obj: Mapping[str, Any]) -> ClaimedAttempt:
    run = dict(get(obj, "run", dict))
    for name in get(obj, "dates", list):
        if name not in run:
            raise InvalidEnvelope(f"field 'dates' names {name!r}, which the run does not have")
        run[name] = dt(run[name], f"run.{name}")
    started = dt(get(obj, "started_at", (int, float)), "started_at")
    assert started is not None
    return ClaimedAttempt(get(obj, "max_tries", int), get(obj, "queue", str), started, run)


@dataclass(frozen=True, slots=True)
class RunFrame:
    """Run this envelope, whose attempt the worker has claimed (parent -> zygote, then zygote ->
    the spare child that runs it)."""

    KIND: ClassVar[str] = "run"
    token: str
    envelope: TaskEnvelope
    claim: ClaimedAttempt

    def to_wire(self) -> Wire:
        return {
            "v": VERSION,
            "k": self.KIND,
            "token": self.token,
            "envelope": self.envelope.to_wire(),
            "claim": self.claim.to_wire(),
        }


@dataclass(frozen=True, slots=True)
class StopFrame:
    """The parent shuts down: the zygote exits."""

    KIND: ClassVar[str] = "stop"

    def to_wire(self) -> Wire:
        return {"v": VERSION, "k": self.KIND}


@dataclass(frozen=True, slots=True)
class StartedFrame:
    """The zygote handed the delivery to the child ``pid`` (its time limits count from here)."""

    KIND: ClassVar[str] = "started"
    token: str
    pid: int

    def to_wire(self) -> Wire:
        return {"v": VERSION, "k": self.KIND, "id": self.token, "pid": self.pid}


@dataclass(frozen=True, slots=True)
class ExitedFrame:
    """The zygote reaped the child; ``status`` is its exit code, negative when a signal killed it."""

    KIND: ClassVar[str] = "exited"
    token: str
    pid: int
    status: int

    def to_wire(self) -> Wire:
        return {"v": VERSION, "k": self.KIND, "id": self.token, "pid": self.pid, "status": self.status}


@dataclass(frozen=True, slots=True)
class OutcomeFrame:
    """How a delivery ended short of a finish the worker recorded: written by a task process that could
    not run its attempt (REJECTED, CRASHED), and built by the worker for every other end.

    ``state`` is a :class:`~rabbitrun.states.TaskState` or an :class:`~rabbitrun.states.OutcomeKind`
    value; the worker's ``decide`` says what each means for the delivery.
    """

    KIND: ClassVar[str] = "outcome"
    token: str
    state: str
    claimed: bool = False
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str = ""

    def to_wire(self) -> Wire:
        return {
            "v": VERSION,
            "k": self.KIND,
            "id": self.token,
            "state": self.state,
            "claimed": self.claimed,
            "started_at": ts(self.started_at),
            "ended_at": ts(self.ended_at),
            "error": self.error,
        }


CommandFrame = RunFrame | StopFrame  # parent -> zygote -> child
ReportFrame = StartedFrame | ExitedFrame | OutcomeFrame  # zygote and children -> parent
Frame = CommandFrame | ReportFrame


def encode_frame(frame: Frame) -> bytes:
    """A length-prefixed msgpack frame for the worker's pipes."""
    return length_prefixed(pack(frame.to_wire()))


def split_frames(buffer: bytearray) -> list[Frame]:
    """Take every complete frame off the front of ``buffer`` (mutated in place) and decode it.

    A frame that does not decode is taken off too, and raises its ProtocolError.
    """
    frames = []
    while (payload := take_payload(buffer)) is not None:
        frames.append(decode_frame(payload))
    return frames


def decode_frame(payload: bytes) -> Frame:
    """One frame's msgpack payload (without its length) -> the typed frame, or a ProtocolError."""
    obj = unpack(payload)
    kind = get(obj, "k", str)
    decode = _FRAMES.get(kind)
    if decode is None:
        raise InvalidEnvelope(f"field 'k' names no worker frame: {kind!r}")
    return decode(obj)


def _run_frame(obj: Mapping[str, Any]) -> RunFrame:
    return RunFrame(
        nonempty(obj, "token"), envelope_from(get(obj, "envelope", dict)), _claimed_attempt(get(obj, "claim", dict))
    )


def _started_frame(obj: Mapping[str, Any]) -> StartedFrame:
    return StartedFrame(nonempty(obj, "id"), get(obj, "pid", int))


def _exited_frame(obj: Mapping[str, Any]) -> ExitedFrame:
    return ExitedFrame(nonempty(obj, "id"), get(obj, "pid", int), get(obj, "status", int))


def decode_outcome_frame(obj: Mapping[str, Any]) -> OutcomeFrame:
    return OutcomeFrame(
        token=nonempty(obj, "id"),
        state=nonempty(obj, "state"),
        claimed=get(obj, "claimed", bool),
        started_at=dt(get(obj, "started_at", (int, float), optional=True), "started_at"),
        ended_at=dt(get(obj, "ended_at", (int, float), optional=True), "ended_at"),
        error=get(obj, "error", str),
    )


_FRAMES: Mapping[str, Callable[[Mapping[str, Any]], Frame]] = {
    RunFrame.KIND: _run_frame,
    StopFrame.KIND: lambda _obj: StopFrame(),
    StartedFrame.KIND: _started_frame,
    ExitedFrame.KIND: _exited_frame,
    OutcomeFrame.KIND: decode_outcome_frame,
}
