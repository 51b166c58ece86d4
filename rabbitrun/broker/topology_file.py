"""The topology file: read ``[defaults]`` and ``[queues.<name>]`` from TOML and validate every key.

The default file ships inside the package (``rabbitrun/broker/default.toml``, read with
importlib.resources, so a wheel declares it without the source tree); ``topology/`` in the
repository holds examples such as ``quorum.toml``, and ``broker.topology_file`` names your own.
Every error names the file and the key. :mod:`rabbitrun.broker.topology` turns the result into
broker objects.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from rabbitrun.errors import ConfigError
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
