"""Topology: load it from `topology/*.toml`, declare it, export it as definitions JSON.

Declaring and exporting derive from one list of object specs
(:func:`object_specs`), so what the management UI imports is exactly what
`topology declare` declares. A conflict with an existing broker object comes
back from RabbitMQ as PRECONDITION_FAILED; it is turned into
:class:`TopologyMismatch` naming the object and the differing argument.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection

import rabbitrun
from rabbitrun.errors import ConfigError, TopologyError, TopologyMismatch
from rabbitrun.names import Names
from rabbitrun.settings import BrokerSettings

_QUEUE_KEYS = {"queue_type", "max_priority", "message_ttl_ms", "max_length"}


@dataclass(frozen=True, slots=True)
class QueueSpec:
    name: str  # logical name, e.g. "default"
    queue_type: str = "classic"
    max_priority: int = 10
    message_ttl_ms: int | None = None
    max_length: int | None = None


@dataclass(frozen=True, slots=True)
class Topology:
    queues: tuple[QueueSpec, ...]
    source: str = "<built-in>"

    def queue_names(self) -> list[str]:
        return [q.name for q in self.queues]


def default_topology_path() -> Path:
    return Path(rabbitrun.__file__).resolve().parent.parent / "topology" / "default.toml"


def load_topology(path: Path | None, settings: BrokerSettings) -> Topology:
    """Read and validate a topology file; errors name the file and the key."""
    path = path or default_topology_path()
    if not path.is_file():
        raise ConfigError(f"topology file {path} not found; set [broker] topology_file", key="broker.topology_file")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise ConfigError(f"cannot read topology file {path}: {exc}", source=str(path)) from exc
    unknown = set(data) - {"defaults", "queues"}
    if unknown:
        raise ConfigError(f"unknown section(s) {sorted(unknown)} in {path}", source=str(path))
    defaults = {"queue_type": settings.queue_type, "max_priority": settings.max_priority, **data.get("defaults", {})}
    queues = [_queue_spec(name, {**defaults, **(opts or {})}, path) for name, opts in data.get("queues", {}).items()]
    if not queues:
        raise ConfigError(f"topology file {path} declares no [queues.<name>]", source=str(path))
    return Topology(tuple(queues), str(path))


def _queue_spec(name: str, opts: dict[str, Any], path: Path) -> QueueSpec:
    bad = set(opts) - _QUEUE_KEYS
    if bad:
        raise ConfigError(f"unknown key(s) {sorted(bad)} for queue {name!r} in {path}; valid: {sorted(_QUEUE_KEYS)}",
                          key=f"queues.{name}", source=str(path))
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise ConfigError(f"bad queue name {name!r} in {path}", key=f"queues.{name}", source=str(path))
    spec = QueueSpec(name, str(opts["queue_type"]), int(opts["max_priority"]),
                     opts.get("message_ttl_ms"), opts.get("max_length"))
    if spec.queue_type not in ("classic", "quorum"):
        raise ConfigError(f"queue {name!r} in {path}: queue_type must be classic or quorum", source=str(path))
    if spec.queue_type == "quorum" and spec.max_priority:
        raise ConfigError(f"queue {name!r} in {path}: quorum queues have no priorities in RabbitMQ 3.10; "
                          "set max_priority = 0 or use a classic queue", source=str(path))
    return spec


# --- the one list of objects ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExchangeObj:
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class QueueObj:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BindingObj:
    exchange: str
    queue: str
    routing_key: str


def object_specs(topology: Topology, names: Names, scheduler_ids: Sequence[str] = ()) -> list[Any]:
    """Every exchange, queue and binding, in declaration order."""
    dlx = names.dead_letter_exchange
    objs: list[Any] = [
        ExchangeObj(names.tasks_exchange, "direct"),
        ExchangeObj(names.control_exchange, "topic"),
        ExchangeObj(names.events_exchange, "topic"),
        ExchangeObj(dlx, "fanout"),  # fanout: dead letters keep their original routing key
        QueueObj(names.dead_letter_queue),
        BindingObj(dlx, names.dead_letter_queue, ""),
    ]
    for q in topology.queues:
        args: dict[str, Any] = {"x-queue-type": q.queue_type, "x-dead-letter-exchange": dlx}
        if q.max_priority:
            args["x-max-priority"] = q.max_priority
        if q.message_ttl_ms is not None:
            args["x-message-ttl"] = int(q.message_ttl_ms)
        if q.max_length is not None:
            args["x-max-length"] = int(q.max_length)
        objs += [QueueObj(names.task_queue(q.name), args), BindingObj(names.tasks_exchange, names.task_queue(q.name),
                                                                      q.name)]
    for sid in scheduler_ids:
        objs.append(QueueObj(names.reply_queue(sid), {"x-queue-type": "classic", "x-dead-letter-exchange": dlx}))
    return objs


@dataclass
class DeclareReport:
    exchanges: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)
    bindings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"declared {len(self.exchanges)} exchanges, {len(self.queues)} queues, "
                f"{len(self.bindings)} bindings:\n  " + "\n  ".join(self.exchanges + self.queues + self.bindings))


_MISMATCH = re.compile(
    r"inequivalent arg '(?P<arg>[^']+)' for (?P<kind>exchange|queue) '(?P<name>[^']+)' in vhost '[^']*': "
    r"received (?:the value )?'?(?P<wanted>[^']*?)'?(?: of type '[^']+')? but current is (?:the value )?"
    r"'?(?P<existing>[^']*?)'?(?: of type '[^']+')?$"
)


def mismatch_from(text: str) -> TopologyMismatch | None:
    """Parse RabbitMQ's PRECONDITION_FAILED text into plain words (None if it is another error)."""
    m = _MISMATCH.search(text.strip().rstrip("'\""))
    if m is None:
        return None
    existing = "(not set)" if m["existing"] == "none" else m["existing"]
    return TopologyMismatch(m["kind"], m["name"], m["arg"], existing, m["wanted"])


async def declare_topology(connection: AbstractConnection, topology: Topology, names: Names, *,
                           scheduler_id: str | None = None) -> DeclareReport:
    """Declare every object idempotently, on a channel of its own (a conflict closes it)."""
    report = DeclareReport()
    channel = await connection.channel()
    try:
        for obj in object_specs(topology, names, [scheduler_id] if scheduler_id else []):
            try:
                await _declare_one(channel, obj, report)
            except aio_pika.exceptions.ChannelPreconditionFailed as exc:
                raise (mismatch_from(str(exc)) or TopologyError(f"broker refused {obj}: {exc}")) from exc
    finally:
        if not channel.is_closed:
            await channel.close()
    return report


async def _declare_one(channel: AbstractChannel, obj: Any, report: DeclareReport) -> None:
    if isinstance(obj, ExchangeObj):
        await channel.declare_exchange(obj.name, aio_pika.ExchangeType(obj.type), durable=True)
        report.exchanges.append(f"exchange {obj.name} ({obj.type})")
    elif isinstance(obj, QueueObj):
        await channel.declare_queue(obj.name, durable=True, arguments=obj.arguments)
        report.queues.append(f"queue {obj.name} {obj.arguments or ''}".rstrip())
    else:
        queue = await channel.get_queue(obj.queue, ensure=False)
        await queue.bind(obj.exchange, routing_key=obj.routing_key)
        report.bindings.append(f"binding {obj.exchange} -> {obj.queue} ({obj.routing_key or '*'})")


def export_definitions(topology: Topology, names: Names, *, vhost: str = "/",
                       scheduler_ids: Sequence[str] = ()) -> dict[str, Any]:
    """RabbitMQ definitions JSON (management UI "Import definitions") for the same objects."""
    exchanges, queues, bindings = [], [], []
    for obj in object_specs(topology, names, scheduler_ids):
        if isinstance(obj, ExchangeObj):
            exchanges.append({"name": obj.name, "vhost": vhost, "type": obj.type, "durable": True,
                              "auto_delete": False, "internal": False, "arguments": {}})
        elif isinstance(obj, QueueObj):
            queues.append({"name": obj.name, "vhost": vhost, "durable": True, "auto_delete": False,
                           "arguments": dict(obj.arguments)})
        else:
            bindings.append({"source": obj.exchange, "vhost": vhost, "destination": obj.queue,
                             "destination_type": "queue", "routing_key": obj.routing_key, "arguments": {}})
    return {"vhosts": [{"name": vhost}], "exchanges": exchanges, "queues": queues, "bindings": bindings}
