"""Topology: load it from ``topology/*.toml``, declare it on the broker, export it as definitions JSON.

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
import difflib
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection
from pamqp.common import FieldValue

from rabbitrun.errors import ConfigError, TopologyError, TopologyMismatch
from rabbitrun.names import Names
from rabbitrun.settings import BrokerSettings

QUEUE_TYPES = ("classic", "quorum")
MAX_PRIORITY_LIMIT = 255  # RabbitMQ's ceiling for x-max-priority
_QUEUE_KEYS = ("queue_type", "max_priority", "message_ttl_ms", "max_length")
_DEFAULTS_KEYS = (*_QUEUE_KEYS, "dead_lettering")
_SECTIONS = ("defaults", "queues")
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}")


# --- the topology file ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """Options of one logical queue, after defaults are applied (0 priority: none)."""

    name: str  # logical name, e.g. "default"; the AMQP queue is Names.task_queue(name)
    queue_type: str = "classic"
    max_priority: int = 10
    message_ttl_ms: int | None = None
    max_length: int | None = None


@dataclass(frozen=True, slots=True)
class Topology:
    """What an installation declares; ``source`` names the file it came from, for messages."""

    queues: tuple[QueueSpec, ...]
    dead_lettering: bool = True
    source: str = "<built-in>"

    def queue_names(self) -> list[str]:
        """Logical queue names in file order (``default``, ``high_priority``, ...)."""
        return [q.name for q in self.queues]


def default_topology_path() -> Path:
    """The topology shipped inside the package (``rabbitrun/broker/default.toml``).

    Read through importlib.resources so that a wheel installed without the source tree
    declares the same topology as a checkout.
    """
    return Path(str(resources.files("rabbitrun.broker").joinpath("default.toml")))


def load_topology(path: Path | None, settings: BrokerSettings) -> Topology:
    """Read and validate a topology file; every error names the file and the key.

    ``settings.queue_type`` is the default queue type and ``settings.max_priority`` the
    default priority of *classic* queues; the file's ``[defaults]`` and each queue's table
    override them. Quorum queues have no priorities in RabbitMQ 3.10, so a priority set
    in the file for a quorum queue is rejected rather than silently dropped.
    """
    if path is None or str(path) in ("", "."):
        path = default_topology_path()
    data = _read_toml(path)
    source = str(path)
    _check_keys(data, _SECTIONS, source, "")
    defaults = _table(data.get("defaults", {}), source, "defaults")
    _check_keys(defaults, _DEFAULTS_KEYS, source, "defaults.")
    queues_table = _table(data.get("queues", {}), source, "queues")
    if not queues_table:
        raise ConfigError(f"{source}: no queues; add at least [queues.default]", key="queues", source=source)
    queues = tuple(_queue_spec(name, opts, defaults, settings, source) for name, opts in queues_table.items())
    dead_lettering = defaults.get("dead_lettering", True)
    if not isinstance(dead_lettering, bool):
        raise ConfigError(
            f"{source}: defaults.dead_lettering must be true or false, not {dead_lettering!r}",
            key="defaults.dead_lettering",
            source=source,
        )
    return Topology(queues, dead_lettering, source)


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(
            f"topology file {path} not found; fix [broker] topology_file or create it",
            key="broker.topology_file",
            source=str(path),
        )
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read topology file {path}: {exc}", key="broker.topology_file", source=str(path)
        ) from exc


def _table(value: object, source: str, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {key} must be a table ([{key}]), not {value!r}", key=key, source=source)
    return value


def _check_keys(table: Mapping[str, Any], valid: Sequence[str], source: str, where: str) -> None:
    """Unknown keys are errors (a typo must not silently fall back to a default)."""
    for key in table:
        if key not in valid:
            match = difflib.get_close_matches(key, valid, n=1)
            hint = f"did you mean {match[0]!r}?" if match else f"valid: {', '.join(valid)}"
            raise ConfigError(f"{source}: unknown key {where}{key}; {hint}", key=f"{where}{key}", source=source)


def _queue_spec(
    name: str, opts: object, defaults: Mapping[str, Any], settings: BrokerSettings, source: str
) -> QueueSpec:
    where = f"queues.{name}"
    if not _QUEUE_NAME.fullmatch(name):
        raise ConfigError(
            f"{source}: bad queue name {name!r} (letters, digits, '_', '-', '.')", key=where, source=source
        )
    table = _table(opts, source, where)
    _check_keys(table, _QUEUE_KEYS, source, f"{where}.")

    def pick(key: str) -> tuple[Any, str]:
        """The queue's own value, else [defaults]; with the key to blame in errors."""
        if key in table:
            return table[key], f"{where}.{key}"
        return defaults.get(key), f"defaults.{key}"

    queue_type = _queue_type(*pick("queue_type"), settings, source)
    priority, priority_key = pick("max_priority")
    if priority is None:
        max_priority = settings.max_priority if queue_type == "classic" else 0
        _check_int(max_priority, "broker.max_priority", "settings", 0, MAX_PRIORITY_LIMIT)
    else:
        max_priority = _check_int(priority, priority_key, source, 0, MAX_PRIORITY_LIMIT)
    if queue_type == "quorum" and max_priority:
        raise ConfigError(
            f"{source}: {priority_key} = {max_priority} but queue {name!r} is a quorum queue, and quorum "
            'queues do not support priorities in RabbitMQ 3.10; set max_priority = 0 or queue_type = "classic"',
            key=priority_key,
            source=source,
        )
    ttl = _optional_int(*pick("message_ttl_ms"), source)
    max_length = _optional_int(*pick("max_length"), source)
    return QueueSpec(name, queue_type, max_priority, ttl, max_length)


def _queue_type(value: object, key: str, settings: BrokerSettings, source: str) -> str:
    if value is None:
        value, key, source = settings.queue_type, "broker.queue_type", "settings"
    if value not in QUEUE_TYPES:
        raise ConfigError(
            f"{source}: {key} must be one of {', '.join(QUEUE_TYPES)}, not {value!r}", key=key, source=source
        )
    return str(value)


def _check_int(value: object, key: str, source: str, low: int, high: int | None = None) -> int:
    # bool is an int subclass: `max_priority = true` must not mean 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{source}: {key} must be an integer {bounds}, not {value!r}", key=key, source=source)
    return value


def _optional_int(value: object, key: str, source: str) -> int | None:
    return None if value is None else _check_int(value, key, source, 0)


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
