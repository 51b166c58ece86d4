"""Topology: declare it on the broker and export it as definitions JSON (the file: :mod:`.topology_file`).

Declaring and exporting both walk one list of object specs (:func:`object_specs`), so
what the management UI imports is exactly what ``rabbitrun topology declare`` declares
and the queue-argument logic exists once. A conflict with an object the broker already
holds comes back from RabbitMQ as PRECONDITION_FAILED (which also closes the channel);
it is turned into :class:`TopologyMismatch` naming the object and the differing argument.

Choices fixed here (DESIGN.md, Topology):

- ``rabbitrun.control`` is a *topic* exchange: requests go to ``worker.<host>`` or
  ``broadcast`` (see :mod:`rabbitrun.names`), and a topic exchange lets a dashboard
  bind ``worker.#`` to watch them all.
- ``rabbitrun.dlx`` is a *fanout* exchange: dead letters keep their original routing
  key (``default``, a reply queue name, ...), and fanout sends every one of them to
  ``rabbitrun.dead`` whatever that key is.

Private: everything prefixed with ``_``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection
from pamqp.common import FieldValue

from rabbitrun.broker.topology_file import MAX_PRIORITY_LIMIT as MAX_PRIORITY_LIMIT
from rabbitrun.broker.topology_file import QUEUE_TYPES as QUEUE_TYPES
from rabbitrun.broker.topology_file import QueueSpec as QueueSpec
from rabbitrun.broker.topology_file import Topology as Topology
from rabbitrun.broker.topology_file import default_topology_path as default_topology_path
from rabbitrun.broker.topology_file import load_topology as load_topology
from rabbitrun.errors import TopologyError, TopologyMismatch
from rabbitrun.names import Names

# --- the one list of objects -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExchangeObj:
    """A durable exchange; ``type`` is an AMQP exchange type (direct, topic, fanout)."""

    kind: ClassVar[str] = "exchange"
    name: str
    type: str
    durable: bool = True
    auto_delete: bool = False
    internal: bool = False


@dataclass(frozen=True, slots=True)
class QueueObj:
    """A durable queue; ``args`` are its x-arguments as pairs so the spec stays hashable."""

    kind: ClassVar[str] = "queue"
    name: str
    args: tuple[tuple[str, int | str], ...] = ()
    durable: bool = True
    auto_delete: bool = False

    @property
    def arguments(self) -> dict[str, int | str]:
        return dict(self.args)


@dataclass(frozen=True, slots=True)
class BindingObj:
    """Queue ``queue`` bound to ``exchange`` with ``routing_key``."""

    kind: ClassVar[str] = "binding"
    exchange: str
    queue: str
    routing_key: str

    @property
    def name(self) -> str:
        return f"{self.exchange} -> {self.queue} ({self.routing_key or '*'})"


ObjectSpec = ExchangeObj | QueueObj | BindingObj


def object_specs(topology: Topology, names: Names, scheduler_ids: Iterable[str] = ()) -> list[ObjectSpec]:
    """Every exchange, queue and binding, in declaration order (an exchange before its bindings)."""
    dlx = names.dead_letter_exchange
    objs: list[ObjectSpec] = [
        ExchangeObj(names.tasks_exchange, "direct"),  # routing key = logical queue name
        ExchangeObj(names.control_exchange, "topic"),
        ExchangeObj(names.events_exchange, "topic"),
        ExchangeObj(dlx, "fanout"),  # dead letters keep their routing key: fanout catches them all
        QueueObj(names.dead_letter_queue, (("x-queue-type", "classic"),)),
        BindingObj(dlx, names.dead_letter_queue, ""),
    ]
    for q in topology.queues:
        queue = names.task_queue(q.name)
        objs += [QueueObj(queue, _task_queue_args(q, topology, names)), BindingObj(names.tasks_exchange, queue, q.name)]
    for sid in scheduler_ids:
        # durable, so results that arrive while the scheduler restarts wait for it (DESIGN, Topology)
        objs.append(QueueObj(names.reply_queue(sid), _dead_letter_args(topology, names, "classic")))
    return objs


def _dead_letter_args(topology: Topology, names: Names, queue_type: str) -> tuple[tuple[str, int | str], ...]:
    args: tuple[tuple[str, int | str], ...] = (("x-queue-type", queue_type),)
    if topology.dead_lettering:
        args += (("x-dead-letter-exchange", names.dead_letter_exchange),)
    return args


def _task_queue_args(q: QueueSpec, topology: Topology, names: Names) -> tuple[tuple[str, int | str], ...]:
    args = _dead_letter_args(topology, names, q.queue_type)
    if q.max_priority:
        args += (("x-max-priority", q.max_priority),)
    if q.message_ttl_ms is not None:
        args += (("x-message-ttl", q.message_ttl_ms),)
    if q.max_length is not None:
        args += (("x-max-length", q.max_length),)
    return args


# --- declaring -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeclareReport:
    """What ``declare_topology`` declared, in order."""

    declared: tuple[ObjectSpec, ...]

    @property
    def exchanges(self) -> list[str]:
        return [o.name for o in self.declared if isinstance(o, ExchangeObj)]

    @property
    def queues(self) -> list[str]:
        return [o.name for o in self.declared if isinstance(o, QueueObj)]

    @property
    def bindings(self) -> list[str]:
        return [o.name for o in self.declared if isinstance(o, BindingObj)]

    def __str__(self) -> str:
        lines = [_describe(o) for o in self.declared]
        head = f"declared {len(self.exchanges)} exchanges, {len(self.queues)} queues, {len(self.bindings)} bindings"
        return "\n  ".join([head + ":", *lines])


def _describe(obj: ObjectSpec) -> str:
    if isinstance(obj, ExchangeObj):
        return f"exchange {obj.name} ({obj.type})"
    if isinstance(obj, QueueObj):
        args = " ".join(f"{k}={v}" for k, v in obj.args)
        return f"queue {obj.name} {args}".rstrip()
    return f"binding {obj.name}"


_VALUE = r"none|the value '[^']*' of type '[^']*'|'[^']*'"
_MISMATCH = re.compile(
    r"inequivalent arg '(?P<arg>[^']+)' for (?P<kind>exchange|queue) '(?P<name>.+?)' in vhost '[^']*': "
    rf"received (?P<wanted>{_VALUE}) but current is (?P<existing>{_VALUE})"
)


def _plain(value: str) -> object:
    """RabbitMQ's ``the value '10' of type 'signedint'`` / ``'direct'`` / ``none`` in plain words."""
    if value == "none":
        return "(not set)"
    text = value.removeprefix("the value ").split("' of type '")[0].strip("'")
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def mismatch_from(text: str) -> TopologyMismatch | None:
    """Parse RabbitMQ's PRECONDITION_FAILED text into a TopologyMismatch (None: another error)."""
    m = _MISMATCH.search(text)
    if m is None:
        return None
    return TopologyMismatch(m["kind"], m["name"], m["arg"], _plain(m["existing"]), _plain(m["wanted"]))


def _refusal(obj: ObjectSpec, exc: aiormq.exceptions.ChannelClosed) -> TopologyError:
    """The typed error for a channel-level refusal while declaring ``obj``."""
    text = " ".join(str(a) for a in exc.args) or str(exc)
    mismatch = mismatch_from(text) if isinstance(exc, aiormq.exceptions.ChannelPreconditionFailed) else None
    return mismatch or TopologyError(f"the broker refused to declare {_describe(obj)}: {text}")


async def declare_topology(
    target: AbstractConnection | AbstractChannel,
    topology: Topology,
    names: Names,
    *,
    scheduler_id: str | None = None,
    timeout_s: float = 10.0,
) -> DeclareReport:
    """Declare every object idempotently; raise TopologyMismatch on the first conflict.

    Pass a connection: the declarations run on a channel of their own, because a
    conflict makes RabbitMQ close the channel it happened on, and the caller's channels
    must survive that. A channel is accepted too; a conflict then leaves it closed by
    the broker (a robust channel reopens itself).
    """
    own = isinstance(target, AbstractConnection)
    channel = await target.channel(publisher_confirms=False) if isinstance(target, AbstractConnection) else target
    declared: list[ObjectSpec] = []
    try:
        for obj in object_specs(topology, names, [scheduler_id] if scheduler_id else []):
            try:
                await asyncio.wait_for(_declare_one(channel, obj), timeout_s)
            except aiormq.exceptions.ChannelClosed as exc:
                raise _refusal(obj, exc) from exc
            except TimeoutError as exc:
                raise TopologyError(
                    f"the broker did not answer within {timeout_s}s declaring {_describe(obj)}"
                ) from exc
            declared.append(obj)
    finally:
        if own and not channel.is_closed:
            await channel.close()
    return DeclareReport(tuple(declared))


async def _declare_one(channel: AbstractChannel, obj: ObjectSpec) -> None:
    # Through the underlying aiormq channel: a robust aio-pika channel would otherwise
    # remember these objects and re-declare them on every reconnect of the caller's channel.
    raw = await channel.get_underlay_channel()
    if isinstance(obj, ExchangeObj):
        await raw.exchange_declare(
            obj.name,
            exchange_type=obj.type,
            durable=obj.durable,
            auto_delete=obj.auto_delete,
            internal=obj.internal,
            arguments={},
        )
    elif isinstance(obj, QueueObj):
        arguments: dict[str, FieldValue] = dict(obj.args)
        await raw.queue_declare(obj.name, durable=obj.durable, auto_delete=obj.auto_delete, arguments=arguments)
    else:
        await raw.queue_bind(obj.queue, obj.exchange, routing_key=obj.routing_key, arguments={})


# --- exporting -------------------------------------------------------------------------------


def export_definitions(
    topology: Topology, names: Names, *, vhost: str = "/", scheduler_ids: Sequence[str] = ()
) -> dict[str, Any]:
    """RabbitMQ definitions JSON (management UI: Overview > Import definitions) of the same objects."""
    exchanges: list[dict[str, Any]] = []
    queues: list[dict[str, Any]] = []
    bindings: list[dict[str, Any]] = []
    for obj in object_specs(topology, names, scheduler_ids):
        if isinstance(obj, ExchangeObj):
            exchanges.append(
                {
                    "name": obj.name,
                    "vhost": vhost,
                    "type": obj.type,
                    "durable": obj.durable,
                    "auto_delete": obj.auto_delete,
                    "internal": obj.internal,
                    "arguments": {},
                }
            )
        elif isinstance(obj, QueueObj):
            queues.append(
                {
                    "name": obj.name,
                    "vhost": vhost,
                    "durable": obj.durable,
                    "auto_delete": obj.auto_delete,
                    "arguments": obj.arguments,
                }
            )
        else:
            bindings.append(
                {
                    "source": obj.exchange,
                    "vhost": vhost,
                    "destination": obj.queue,
                    "destination_type": "queue",
                    "routing_key": obj.routing_key,
                    "arguments": {},
                }
            )
    return {"vhosts": [{"name": vhost}], "exchanges": exchanges, "queues": queues, "bindings": bindings}
