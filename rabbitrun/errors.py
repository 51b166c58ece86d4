"""The whole exception tree of rabbitrun and the exit codes the CLI maps them to.

Every error the library raises on purpose derives from :class:`RabbitrunError`
and carries its facts as attributes, so callers (and the CLI) never parse
messages. Outcomes that user code signals on purpose (skip, fail without
retry, timeout) are *not* errors and live in :mod:`rabbitrun.authoring.signals`.
"""

from __future__ import annotations

# Exit codes, one meaning each (see `rabbitrun --help`).
EXIT_OK = 0
EXIT_FAILURE = 1  # the thing asked for ran and failed (e.g. a DAG run failed)
EXIT_USAGE = 2  # bad input: unknown DAG/task, bad flag, bad config value
EXIT_UNAVAILABLE = 3  # a service (broker, database) cannot be reached
EXIT_INTERNAL = 4  # a bug or an unexpected state


class RabbitrunError(Exception):
    """Root of every deliberate rabbitrun error."""

    exit_code: int = EXIT_INTERNAL


# --- configuration ---------------------------------------------------------


class ConfigError(RabbitrunError):
    """A setting is unknown or has a bad value; names the key and where it came from."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, key: str = "", source: str = "") -> None:
        super().__init__(message)
        self.key = key
        self.source = source


# --- DAGs --------------------------------------------------------------------


class DagError(RabbitrunError):
    exit_code = EXIT_USAGE


class DagNotFound(DagError):
    def __init__(self, dag_id: str) -> None:
        super().__init__(f"DAG not found: {dag_id!r}")
        self.dag_id = dag_id


class TaskNotFound(DagError):
    def __init__(self, dag_id: str, task_id: str) -> None:
        super().__init__(f"task {task_id!r} not found in DAG {dag_id!r}")
        self.dag_id = dag_id
        self.task_id = task_id


class DagRunNotFound(DagError):
    def __init__(self, dag_id: str, run_id: str) -> None:
        super().__init__(f"DAG run {run_id!r} of DAG {dag_id!r} not found")
        self.dag_id = dag_id
        self.run_id = run_id


class DagDefinitionError(DagError):
    """A DAG or task is defined wrongly (cycle, duplicate task id, bad argument)."""


class ParamValidationError(DagError):
    """A DAG param's value (its default or the run's conf) does not satisfy its Param schema."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"param {name!r} is invalid: {reason}")
        self.name = name
        self.reason = reason


class MappingError(DagError):
    """A mapped task cannot expand: its input is not a list, or has more elements than allowed."""


class UnsafeDagPath(DagError):
    """A DAG file path points outside the dags folder."""

    def __init__(self, path: str) -> None:
        super().__init__(f"DAG file path escapes the dags folder: {path!r}")
        self.path = path


class InvalidRunId(DagError):
    """A run_id breaks Airflow's character rules (it names a log folder, so no ``/`` and no ``..``)."""

    def __init__(self, run_id: str, reason: str) -> None:
        super().__init__(f"invalid run_id {run_id!r}: {reason}")
        self.run_id = run_id


class UnsafeLogPath(RabbitrunError):
    """An attempt's key would name a log file outside the log folder (``..``, ``/``, a symlink out)."""

    exit_code = EXIT_USAGE

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"refusing the log path of {key}: {reason}")
        self.key = key


# --- protocol ----------------------------------------------------------------


class ProtocolError(RabbitrunError):
    """A message cannot be accepted; ``reason`` becomes the dead-letter header."""

    exit_code = EXIT_USAGE  # bad input from a peer (a forged or malformed message), not a bug here

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DecodeError(ProtocolError):
    pass


class UnsupportedVersion(ProtocolError):
    def __init__(self, version: object) -> None:
        super().__init__(f"unsupported protocol version: {version!r}")
        self.version = version


class InvalidEnvelope(ProtocolError):
    pass


class ControlRefused(ProtocolError):
    """A control request is not executed: unsigned, wrongly signed, expired, replayed, or the
    receiver holds no control key. ``reason`` says which (it is logged, never the message body)."""


# --- broker ------------------------------------------------------------------


class BrokerError(RabbitrunError):
    exit_code = EXIT_UNAVAILABLE


class BrokerUnavailable(BrokerError):
    def __init__(self, url: str, cause: str) -> None:
        super().__init__(f"cannot connect to RabbitMQ at {url}: {cause}")
        self.url = url
        self.cause = cause


class PublishNotConfirmed(BrokerError):
    def __init__(self, routing_key: str, cause: str) -> None:
        super().__init__(f"broker did not confirm the message for {routing_key!r}: {cause}")
        self.routing_key = routing_key
        self.cause = cause


class Unroutable(BrokerError):
    """A mandatory publish came back: nothing is bound for that queue."""

    exit_code = EXIT_USAGE

    def __init__(self, exchange: str, routing_key: str, queue: str) -> None:
        super().__init__(
            f"no queue is bound for queue {queue!r} (exchange {exchange!r}, routing key "
            f"{routing_key!r}); run `rabbitrun topology declare` or add {queue!r} to the topology"
        )
        self.exchange = exchange
        self.routing_key = routing_key
        self.queue = queue


class TopologyError(BrokerError):
    exit_code = EXIT_USAGE


class TopologyMismatch(TopologyError):
    """The broker already has an object declared with different arguments."""

    def __init__(self, kind: str, name: str, argument: str, existing: object, wanted: object) -> None:
        super().__init__(
            f"{kind} {name!r} already exists on the broker with {argument}={existing!r}, "
            f"but the topology wants {argument}={wanted!r}; delete it (or change the "
            f"topology file) and declare again"
        )
        self.kind = kind
        self.name = name
        self.argument = argument
        self.existing = existing
        self.wanted = wanted


# --- state / database --------------------------------------------------------


class StateError(RabbitrunError):
    pass


class DatabaseUnavailable(StateError):
    exit_code = EXIT_UNAVAILABLE

    def __init__(self, url: str, cause: str) -> None:
        super().__init__(f"cannot use the metadata database at {url}: {cause}")
        self.url = url
        self.cause = cause


class DatabaseNotInitialized(StateError):
    exit_code = EXIT_UNAVAILABLE

    def __init__(self, url: str, detail: str) -> None:
        super().__init__(f"metadata database at {url} is not initialised ({detail}); run `rabbitrun db init`")
        self.url = url


class InvalidTransition(StateError):
    """A task instance state change that states.TRANSITIONS, or the kind of change asked for
    (``by``, e.g. "claim"), does not allow: a bug in the caller, never a race (a race loses the
    compare-and-set and changes nothing)."""

    def __init__(self, current: str, wanted: str, by: str = "") -> None:
        super().__init__(f"invalid state transition {current} -> {wanted}" + (f" by {by}" if by else ""))
        self.current = current
        self.wanted = wanted
        self.by = by


class SchedulerAlreadyRunning(StateError):
    """A second scheduler on SQLite, or a scheduler_id another live scheduler holds."""

    exit_code = EXIT_USAGE

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


# --- data --------------------------------------------------------------------


class XComError(RabbitrunError):
    exit_code = EXIT_FAILURE


class LogNotFound(RabbitrunError):
    """No log for the attempt: not in the log folder, not on remote storage, not on a live worker."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, key: str = "") -> None:
        super().__init__(message)
        self.key = key


class RunWaitTimeout(RabbitrunError):
    """``--wait`` gave up: the DAG run did not finish within the time asked (it goes on running)."""

    exit_code = EXIT_FAILURE

    def __init__(self, dag_id: str, run_id: str, timeout_s: float) -> None:
        super().__init__(f"DAG run {run_id} of {dag_id} did not finish within {timeout_s:g}s")
        self.dag_id, self.run_id, self.timeout_s = dag_id, run_id, timeout_s


class SecretsError(RabbitrunError):
    exit_code = EXIT_USAGE


class TaskChannelError(RabbitrunError):
    """A task process could not get an answer from its worker: the channel closed (the worker is
    gone or shutting down), the worker could not serve it (its DB is down), or there is no channel
    (code that reads Variables at DAG-file import time in a task process)."""

    exit_code = EXIT_FAILURE


class AccessDenied(RabbitrunError):
    """A task asked for what its attempt may not read or write (another DAG run's XComs, a push as
    another task, a Connection write)."""

    exit_code = EXIT_FAILURE


class PoolError(RabbitrunError):
    """A pool cannot be set or deleted as asked (bad slots, the default pool, unknown name)."""

    exit_code = EXIT_USAGE

    def __init__(self, pool: str, detail: str) -> None:
        super().__init__(f"pool {pool}: {detail}")
        self.pool = pool
        self.detail = detail


class VariableNotFound(RabbitrunError, KeyError):
    exit_code = EXIT_USAGE

    def __init__(self, key: str) -> None:
        RabbitrunError.__init__(self, f"Variable {key} does not exist")
        self.key = key

    def __str__(self) -> str:
        return str(self.args[0])


class ConnectionNotFound(RabbitrunError, KeyError):
    exit_code = EXIT_USAGE

    def __init__(self, conn_id: str) -> None:
        RabbitrunError.__init__(self, f"Connection {conn_id} does not exist")
        self.conn_id = conn_id

    def __str__(self) -> str:
        return str(self.args[0])
