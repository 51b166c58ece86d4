"""Control requests to live workers and their replies (``rabbitrun inspect`` / ``control``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from rabbitrun.errors import InvalidEnvelope
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.protocol.codec import (
    VERSION,
    Wire,
    get,
    key_from,
    key_wire,
    nonempty,
    unpack,
)

# --- control requests and replies (rabbitrun.control exchange, direct reply-to) ----------------
#
# ``{"v": 1, "kind": <command>, "args": {...}}`` and ``{"v": 1, "kind": "reply", ...}``.

CONTROL_MESSAGE_TYPE = "rabbitrun.control"
EVENT_MESSAGE_TYPE = "rabbitrun.event"


@dataclass(frozen=True, slots=True)
class ControlRequest:
    """One inspect/control command for live workers, with the arguments the commands take.

    The command set belongs to the worker (:mod:`rabbitrun.worker.commands`): any name decodes, and a
    worker answers one it does not know with an error reply. Arguments are optional on the wire; a
    command that needs one says so in its reply.
    """

    command: str
    queue: str | None = None  # add_consumer, cancel_consumer
    n: int | None = None  # pool_grow, pool_shrink
    key: TaskInstanceKey | None = None  # read_log

    @classmethod
    def of(cls, command: str, args: Mapping[str, Any]) -> ControlRequest:
        """A request from a command name and its arguments as a map, checked as a decoder checks them."""
        return _control_request({"kind": command, "args": dict(args)})

    def to_wire(self) -> Wire:
        args: Wire = {}
        if self.queue is not None:
            args["queue"] = self.queue
        if self.n is not None:
            args["n"] = self.n
        if self.key is not None:
            args.update(key_wire(self.key))
        return {"v": VERSION, "kind": self.command, "args": args}


@dataclass(frozen=True, slots=True)
class ControlReply:
    """A worker's answer to one request: ``data`` when ``ok``, else ``error``.

    ``data`` is the command's own answer (a string, a number, lists and maps of them), printed by
    `rabbitrun inspect` as JSON; its shape is the command's, so it is not typed here.
    """

    KIND: ClassVar[str] = "reply"
    hostname: str
    command: str
    ok: bool
    data: Any = None
    error: str = ""

    def to_wire(self) -> Wire:
        wire: Wire = {"v": VERSION, "kind": self.KIND, "hostname": self.hostname, "command": self.command}
        if self.ok:
            wire.update(ok=True, data=self.data)
        else:
            wire.update(ok=False, error=self.error)
        return wire


def decode_control_request(body: bytes) -> ControlRequest:
    """An unsigned request (tests and the decoder's own checks); workers accept only signed ones
    (:func:`rabbitrun.protocol.control_auth.verify_control_request`)."""
    return _control_request(unpack(body))


def control_request_from(obj: Mapping[str, Any]) -> ControlRequest:
    """The request in an already unpacked map (the payload of a signed request)."""
    return _control_request(obj)


def decode_control_reply(body: bytes) -> ControlReply:
    obj = unpack(body)
    if get(obj, "kind", str) != ControlReply.KIND:
        raise InvalidEnvelope(f"field 'kind' must be {ControlReply.KIND!r} in a control reply")
    ok = get(obj, "ok", bool)
    return ControlReply(
        hostname=get(obj, "hostname", str),
        command=nonempty(obj, "command"),
        ok=ok,
        data=obj.get("data") if ok else None,
        error="" if ok else get(obj, "error", str),
    )


def _control_request(obj: Mapping[str, Any]) -> ControlRequest:
    command = nonempty(obj, "kind")
    args = get(obj, "args", dict, optional=True) or {}
    key = None
    if any(name in args for name in ("dag_id", "task_id", "run_id", "try_number")):
        key = key_from({"map_index": -1, **args})  # map_index may be left out: not mapped
    return ControlRequest(
        command=command,
        queue=get(args, "queue", str, optional=True),
        n=get(args, "n", int, optional=True),
        key=key,
    )
