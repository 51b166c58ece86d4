"""Settings and load_settings(): the only reader of os.environ and rabbitrun.toml.

Precedence: defaults -> ``$RABBITRUN_HOME/rabbitrun.toml`` -> environment
``RABBITRUN__SECTION__KEY`` -> explicit overrides (CLI flags, tests). The
result is one frozen object, passed down to whoever needs a section. An unknown
key or a bad value raises :class:`ConfigError` naming the key, where it came
from and the closest valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rabbitrun.errors import ConfigError

ENV_PREFIX = "RABBITRUN__"
VAR_PREFIX = "RABBITRUN_VAR_"
CONN_PREFIX = "RABBITRUN_CONN_"
HOME_ENV = "RABBITRUN_HOME"
CONFIG_FILE = "rabbitrun.toml"


class Secret(str):
    """A string that masks itself in repr, so settings can be logged safely."""

    def __repr__(self) -> str:
        return "'***'" if self else "''"


def mask_url(url: str) -> str:
    """Replace the password of a URL with ``***`` for messages and listings."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    # Rebuilt from the raw netloc, not parts.hostname/port: those drop IPv6 brackets and raise on a bad port.
    userinfo, _, hostport = parts.netloc.rpartition("@")
    username = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{username}:***@{hostport}"))


@dataclass(frozen=True)
class CoreSettings:
    dags_folder: str = ""  # default: $RABBITRUN_HOME/dags
    # on sys.path (after the dags folder) while DAG files import: helper modules, custom timetables
    plugins_folder: str = ""  # default: $RABBITRUN_HOME/plugins
    load_examples: bool = True
    # DAG files import `airflow.*` unchanged: rabbitrun's names stand in (rabbitrun/authoring/airflow_shim.py)
    airflow_compat: bool = False
    default_queue: str = "default"
    fernet_key: Secret = Secret("")
    parallelism: int = 0  # 0: unlimited
    task_queued_timeout_s: float = 600.0
    # "fail" or "requeue" a task nobody claimed within task_queued_timeout_s
    task_queued_timeout_action: str = "fail"
    # re-runs of one task instance (same try) after its worker was lost; one more ends it as failed
    max_infra_retries: int = 3
    enable_xcom_pickling: bool = False
    max_xcom_size: int = 1_048_576
    xcom_backend: str = ""
    max_map_length: int = 1024  # most task instances one mapped task may expand to
    sensitive_var_conn_names: tuple[str, ...] = (
        "password",
        "secret",
        "passwd",
        "authorization",
        "api_key",
        "apikey",
        "access_token",
        "token",  # slack_token, github_token, ... (Airflow's list has it too)
        "passphrase",
        "private_key",
        "credential",
    )
    # connection types accepted besides the built-in list (rabbitrun.data.connections.KNOWN_CONN_TYPES)
    extra_conn_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatabaseSettings:
    url: Secret = Secret("")  # default: sqlite:///$RABBITRUN_HOME/rabbitrun.db
    pool_size: int = 5
    max_overflow: int = 10
    pool_recycle_s: int = 1800  # PostgreSQL: replace pooled connections older than this
    pool_pre_ping: bool = True  # PostgreSQL: test a pooled connection before use
    connect_timeout_s: float = 5.0
    retry_attempts: int = 3  # transient errors (dropped connection, serialization failure)
    sqlite_busy_timeout_s: float = 30.0


@dataclass(frozen=True)
class BrokerSettings:
    url: Secret = Secret("amqp://guest:guest@127.0.0.1:5672/")
    prefix: str = ""
    management_url: Secret = Secret("http://guest:guest@127.0.0.1:15672/")
    topology_file: str = ""  # default: the topology shipped in the package (rabbitrun/broker/default.toml)
    connect_timeout_s: float = 5.0
    confirm_timeout_s: float = 10.0
    heartbeat_s: int = 30
    # after a lost connection: wait min, then as long as it has been down so far, capped at max
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    max_priority: int = 10
    queue_type: str = "classic"  # or "quorum"


@dataclass(frozen=True)
class LoggingSettings:
    base_log_folder: str = ""  # default: $RABBITRUN_HOME/logs
    level: str = "INFO"
    log_format: str = "[%(asctime)s] {%(filename)s:%(lineno)d} %(levelname)s - %(message)s"
    process_log_file: str = ""  # scheduler/worker log file (rotated); empty: stderr
    process_log_max_bytes: int = 10_485_760
    process_log_backup_count: int = 5


@dataclass(frozen=True)
class SchedulerSettings:
    # names the durable reply queue, consumed by one scheduler at a time. Default: the host name, or
    # <host>-2, <host>-3, ... when other schedulers on this host hold it (an explicit id is never changed)
    scheduler_id: str = ""
    poll_interval_s: float = 1.0  # full pass: timers, stuck queued, expired leases; results wake it at once
    new_run_check_s: float = 0.05  # how often a cheap query looks for newly triggered runs
    dag_dir_list_interval_s: float = 30.0
    publish_batch_size: int = 500


#: Settings that are gone, and what took their place: an old config file gets told, not just refused.
_REPLACED = {
    "scheduler.zombie_threshold_s": "[worker] lease_s (an attempt whose lease expires runs again, same try)",
}


@dataclass(frozen=True)
class WorkerSettings:
    queues: tuple[str, ...] = ("default",)
    concurrency: int = 16
    autoscale: str = ""  # "MAX,MIN": grow and shrink task processes with the backlog
    # task processes forked and connected to the DB ahead of time, so a delivery starts at once
    spare_processes: int = 2
    hostname: str = ""  # default: worker@<host name>
    shutdown_timeout_s: float = 60.0
    # heartbeats on the events exchange, and the renewal of the lease of every running attempt
    heartbeat_interval_s: float = 2.0
    # an attempt whose lease is not renewed for this long is re-run elsewhere (same try); a worker
    # that cannot renew kills its task processes before that (self-fencing)
    lease_s: float = 10.0
    # hard limit = soft limit (execution_timeout) + this grace, then SIGKILL
    kill_grace_s: float = 10.0
    # ack a long delivery once claimed so RabbitMQ's consumer_timeout cannot fire
    ack_running_after_s: float = 600.0
    # the most task processes `control pool-grow` may reach; 0: max(64, 4 x concurrency, autoscale max)
    max_concurrency: int = 0


@dataclass(frozen=True)
class ControlSettings:
    # HMAC key of inspect/control requests: operators and workers hold it, task processes never do.
    # `rabbitrun db init` generates one into rabbitrun.toml (0600); without it workers refuse every request
    secret_key: Secret = Secret("")
    request_ttl_s: float = 60.0  # a signed request is refused after this (and its nonce forgotten)


@dataclass(frozen=True)
class MetricsSettings:
    # Prometheus endpoint: -1 off, 0 any free port (logged), else that port
    scheduler_port: int = -1
    worker_port: int = -1
    host: str = "0.0.0.0"
    # StatsD (UDP), Airflow's [metrics] names: the same metrics, sent as they change
    statsd_on: bool = False
    statsd_host: str = "127.0.0.1"
    statsd_port: int = 8125
    statsd_prefix: str = "rabbitrun"


@dataclass(frozen=True)
class Settings:
    home: Path
    core: CoreSettings = field(default_factory=CoreSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    control: ControlSettings = field(default_factory=ControlSettings)
    # RABBITRUN_VAR_<KEY> / RABBITRUN_CONN_<CONN_ID>, keyed in lower case: they win over the DB
    env_variables: Mapping[str, str] = field(default_factory=dict, repr=False)
    env_connections: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def config_file(self) -> Path:
        return self.home / CONFIG_FILE

    def as_dict(self, *, masked: bool = True) -> dict[str, dict[str, Any]]:
        """Effective values by section, secrets and URL passwords masked."""
        out: dict[str, dict[str, Any]] = {}
        for section in SECTIONS:
            values = {}
            for f in fields(getattr(self, section)):
                value = getattr(getattr(self, section), f.name)
                if masked and isinstance(value, Secret):
                    value = mask_url(str(value)) if "://" in value else ("***" if value else "")
                elif isinstance(value, Secret):
                    value = str(value)
                values[f.name] = list(value) if isinstance(value, tuple) else value
            out[section] = values
        return out


def for_task_process(settings: Settings) -> Settings:
    """The settings a task process may hold: every :class:`Secret` blanked (DB URL, Fernet key,
    broker and management URLs) and no Variables or Connections from the environment.

    The worker owns the attempt (DESIGN.md, "Task process boundary"): a task asks its worker for a
    Variable or Connection over its pipe, so DAG code cannot read what another team's tasks may.
    """
    blanked = {}
    for section in SECTIONS:
        values = getattr(settings, section)
        secret = {f.name: Secret("") for f in fields(values) if isinstance(getattr(values, f.name), Secret)}
        blanked[section] = dataclasses.replace(values, **secret)
    return dataclasses.replace(settings, **blanked, env_variables={}, env_connections={})


def task_process_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment a task process starts with: the worker's, without the settings
    (``RABBITRUN__*``), the Variables and Connections (``RABBITRUN_VAR_*``, ``RABBITRUN_CONN_*``)
    and the home that holds the settings file. What the task needs of them its worker serves."""
    return {
        name: value
        for name, value in environ.items()
        if not name.startswith((ENV_PREFIX, VAR_PREFIX, CONN_PREFIX)) and name != HOME_ENV
    }


SECTIONS: dict[str, type] = {
    "core": CoreSettings,
    "database": DatabaseSettings,
    "broker": BrokerSettings,
    "logging": LoggingSettings,
    "scheduler": SchedulerSettings,
    "worker": WorkerSettings,
    "metrics": MetricsSettings,
    "control": ControlSettings,
}


def _closest(name: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean {match[0]!r}?" if match else f"; valid: {', '.join(sorted(choices))}"


def _convert(section: str, key: str, raw: Any, annotation: str, source: str) -> Any:
    """Coerce a TOML or environment value to the field's type, or name what is wrong."""
    where = f"[{section}] {key} (from {source})"
    try:
        if annotation == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if annotation == "int":
            if isinstance(raw, bool | float):  # int() would truncate 1.9 to 1 without a word
                raise ValueError("expected an integer")
            return int(raw)
        if annotation == "float":
            if isinstance(raw, bool):
                raise ValueError("expected a number")
            return float(raw)
        if annotation.startswith("tuple"):
            items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
            return tuple(str(i).strip() for i in items if str(i).strip())
        if annotation == "Secret":
            return Secret(str(raw))
        if not isinstance(raw, str | int | float):
            raise ValueError("expected a string")
        return str(raw)
    except (TypeError, ValueError) as exc:  # int()/float() raise TypeError for TOML arrays, tables and dates
        raise ConfigError(f"bad value {raw!r} for {where}: {exc}", key=f"{section}.{key}", source=source) from exc


def _apply(
    layers: dict[str, dict[str, Any]], values: Mapping[str, Any], source: str, *, section_hint: str = ""
) -> None:
    for section, entries in values.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"unknown section [{section}] in {source}{_closest(section, list(SECTIONS))}",
                key=section,
                source=source,
            )
        if not isinstance(entries, Mapping):
            raise ConfigError(f"[{section}] in {source} must be a table", key=section, source=source)
        known = {f.name: str(f.type) for f in fields(SECTIONS[section])}
        for key, raw in entries.items():
            if key not in known:
                replaced = _REPLACED.get(f"{section}.{key}")
                hint = f"; it was replaced by {replaced}" if replaced else _closest(key, list(known))
                raise ConfigError(
                    f"unknown setting [{section}] {key} in {source}{hint}",
                    key=f"{section}.{key}",
                    source=source,
                )
            layers.setdefault(section, {})[key] = _convert(section, key, raw, known[key], source)


def _env_layer(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2:
            raise ConfigError(
                f"environment variable {name} must look like RABBITRUN__SECTION__KEY", key=name, source="environment"
            )
        out.setdefault(parts[0], {})[parts[1]] = value
    return out


def _prefixed(environ: Mapping[str, str], prefix: str) -> dict[str, str]:
    return {name[len(prefix) :].lower(): value for name, value in environ.items() if name.startswith(prefix)}


def default_hostname() -> str:
    return socket.gethostname()


def load_settings(
    *,
    home: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    read_file: bool = True,
) -> Settings:
    """Build the one settings object.

    ``env`` defaults to ``os.environ``; tests pass a dict instead of editing the
    process environment. ``overrides`` (CLI flags) win over everything.
    """
    environ = os.environ if env is None else env
    home_path = Path(home or environ.get(HOME_ENV) or Path.home() / "rabbitrun").expanduser().absolute()
    layers: dict[str, dict[str, Any]] = {}
    config_file = home_path / CONFIG_FILE
    if read_file and config_file.is_file():
        try:
            data = tomllib.loads(config_file.read_text())
        except (tomllib.TOMLDecodeError, OSError) as exc:
            raise ConfigError(f"cannot read {config_file}: {exc}", source=str(config_file)) from exc
        _apply(layers, data, str(config_file))
    _apply(layers, _env_layer(environ), "environment")
    if overrides:
        _apply(layers, overrides, "command line")
    sections = {name: dataclasses.replace(cls(), **layers.get(name, {})) for name, cls in SECTIONS.items()}
    settings = Settings(
        home=home_path,
        **sections,
        env_variables=_prefixed(environ, VAR_PREFIX),
        env_connections=_prefixed(environ, CONN_PREFIX),
    )
    return _fill_defaults(settings)


def _fill_defaults(s: Settings) -> Settings:
    """Defaults that depend on the home directory or the host."""
    core = s.core if s.core.dags_folder else dataclasses.replace(s.core, dags_folder=str(s.home / "dags"))
    if not core.plugins_folder:
        core = dataclasses.replace(core, plugins_folder=str(s.home / "plugins"))
    db_url = s.database.url or Secret(f"sqlite:///{s.home / 'rabbitrun.db'}")
    database = dataclasses.replace(s.database, url=Secret(db_url))
    log_folder = s.logging.base_log_folder or str(s.home / "logs")
    logging_ = dataclasses.replace(s.logging, base_log_folder=log_folder)
    host = default_hostname()
    scheduler = s.scheduler if s.scheduler.scheduler_id else dataclasses.replace(s.scheduler, scheduler_id=host)
    worker = s.worker if s.worker.hostname else dataclasses.replace(s.worker, hostname=f"worker@{host}")
    if worker.max_concurrency == 0:
        autoscale_max = worker.autoscale.split(",")[0].strip()
        ceiling = max(64, 4 * worker.concurrency, int(autoscale_max) if autoscale_max.isdigit() else 0)
        worker = dataclasses.replace(worker, max_concurrency=ceiling)
    if worker.max_concurrency < worker.concurrency:
        raise ConfigError("[worker] max_concurrency must be at least concurrency", key="worker.max_concurrency")
    if not 0 < s.control.request_ttl_s <= 300:
        raise ConfigError("[control] request_ttl_s must be in (0, 300]", key="control.request_ttl_s")
    if s.worker.concurrency < 1:
        raise ConfigError("[worker] concurrency must be at least 1", key="worker.concurrency")
    if s.core.max_map_length < 1:
        raise ConfigError("[core] max_map_length must be at least 1", key="core.max_map_length")
    if not 0 < s.broker.reconnect_min_s <= s.broker.reconnect_max_s:
        raise ConfigError(
            "[broker] reconnect_min_s must be positive and at most reconnect_max_s", key="broker.reconnect_min_s"
        )
    if s.broker.queue_type not in ("classic", "quorum"):
        raise ConfigError("[broker] queue_type must be 'classic' or 'quorum'", key="broker.queue_type")
    if not 0 < s.worker.heartbeat_interval_s * 2 <= s.worker.lease_s:
        raise ConfigError(
            "[worker] lease_s must be at least twice heartbeat_interval_s (a lease survives one lost renewal)",
            key="worker.lease_s",
        )
    if s.core.max_infra_retries < 0:
        raise ConfigError("[core] max_infra_retries must be 0 or more", key="core.max_infra_retries")
    if s.core.task_queued_timeout_action not in ("fail", "requeue"):
        raise ConfigError(
            "[core] task_queued_timeout_action must be 'fail' or 'requeue'", key="core.task_queued_timeout_action"
        )
    return dataclasses.replace(s, core=core, database=database, logging=logging_, scheduler=scheduler, worker=worker)
