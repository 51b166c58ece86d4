"""Task envelopes (scheduler -> task queues) and results (worker -> reply queues), and their AMQP
properties: the messages an operator sees in the RabbitMQ management UI (DESIGN.md, Wire protocol)."""

from __future__ import annotations

import math
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rabbitrun.errors import InvalidEnvelope
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.names import APP_ID, RESULT_MESSAGE_TYPE, TASK_MESSAGE_TYPE
from rabbitrun.protocol.codec import (
    CONTENT_TYPE,
    MAX_ERROR_CHARS,
    PERSISTENT,
    VERSION,
    Wire,
    check_version,
    dt,
    get,
    key_from,
    nonempty,
    now,
    pack,
    strings,
    ts,
    unpack,
)


@dataclass(frozen=True, slots=True)
class TaskEnvelope:
    """A work order for one attempt. It names a task to run, never a command."""

    id: str
    key: TaskInstanceKey
    dag_file: str  # relative to the dags folder, or "@examples/<file>"
    queue: str
    priority: int = 0
    execution_timeout_s: float | None = None
    enqueued_at: datetime = field(default_factory=now)
    # this try's retry delay, for the worker that records a death its child could not (SIGKILL, OOM)
    retry_delay_s: float = 0.0
    # DAG ids (or "*") whose XComs of any run the task may pull, from its DAG's ``xcom_pull_from``;
    # by default only its own DAG run's. Only the scheduler publishes envelopes (broker permissions).
    xcom_pull_from: tuple[str, ...] = ()
    # task ids of the same run this task may skip when it succeeds (a branch, short circuit or latest
    # only operator: its downstream tasks, from the DAG). The worker refuses a skip naming any other
    # task: the task process reports its skips, the scheduler says which it may make.
    may_skip: tuple[str, ...] = ()

    def to_wire(self) -> Wire:
        return {
            "v": VERSION,
            "id": self.id,
            "dag_id": self.key.dag_id,
            "task_id": self.key.task_id,
            "run_id": self.key.run_id,
            "map_index": self.key.map_index,
            "try_number": self.key.try_number,
            "dag_file": self.dag_file,
            "queue": self.queue,
            "priority": self.priority,
            "execution_timeout_s": self.execution_timeout_s,
            "enqueued_at": ts(self.enqueued_at),
            "retry_delay_s": self.retry_delay_s,
            "xcom_pull_from": list(self.xcom_pull_from),
            "may_skip": list(self.may_skip),
        }


@dataclass(frozen=True, slots=True)
class TaskResult:
    """What a worker reports on ``reply_to`` once an attempt is durable in the DB."""

    envelope_id: str
    key: TaskInstanceKey
    state: str
    exit_code: int | None
    hostname: str
    started_at: datetime | None
    ended_at: datetime | None
    error: str = ""

    def to_wire(self) -> Wire:
        return {
            "v": VERSION,
            "envelope_id": self.envelope_id,
            "dag_id": self.key.dag_id,
            "task_id": self.key.task_id,
            "run_id": self.key.run_id,
            "map_index": self.key.map_index,
            "try_number": self.key.try_number,
            "state": self.state,
            "exit_code": self.exit_code,
            "hostname": self.hostname,
            "started_at": ts(self.started_at),
            "ended_at": ts(self.ended_at),
            "error": self.error[:MAX_ERROR_CHARS],
        }


def encode_envelope(envelope: TaskEnvelope) -> bytes:
    return pack(envelope.to_wire())


def encode_result(result: TaskResult) -> bytes:
    return pack(result.to_wire())


def check_dag_file(dag_file: str) -> str:
    """Refuse DAG file references that could leave the dags folder.

    This is the pure half of the check; the worker also resolves symlinks
    against the real folder before importing anything.
    """
    if not dag_file or "\x00" in dag_file or "\\" in dag_file:
        raise InvalidEnvelope(f"DAG file path {dag_file!r} is not a plain relative path")
    path = dag_file.removeprefix("@examples/")
    normalized = posixpath.normpath(path)
    if path.startswith("/") or normalized == ".." or normalized.startswith("../") or not path.endswith(".py"):
        raise InvalidEnvelope(f"DAG file path {dag_file!r} escapes the dags folder")
    return dag_file


def decode_envelope(body: bytes) -> TaskEnvelope:
    """Bytes from the broker -> a validated envelope, or a ProtocolError with a reason."""
    return envelope_from(unpack(body))


def envelope_from(obj: Mapping[str, Any]) -> TaskEnvelope:
    """A map (from the broker, or inside a run frame) -> a validated envelope."""
    check_version(obj)  # again for an envelope inside a worker frame
    timeout = get(obj, "execution_timeout_s", (int, float), optional=True)
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        # NaN <= 0 is False, so finiteness is checked first: timers armed with NaN or inf never fire
        raise InvalidEnvelope("field 'execution_timeout_s' must be a positive, finite number of seconds")
    enqueued_at = dt(get(obj, "enqueued_at", (int, float)), "enqueued_at")
    assert enqueued_at is not None
    retry_delay = get(obj, "retry_delay_s", (int, float), optional=True)  # optional: older senders
    if retry_delay is not None and not 0 <= retry_delay < 1e9:
        raise InvalidEnvelope("field 'retry_delay_s' must be a non-negative number of seconds")
    return TaskEnvelope(
        id=nonempty(obj, "id"),
        key=key_from(obj),
        dag_file=check_dag_file(get(obj, "dag_file", str)),
        queue=nonempty(obj, "queue"),
        priority=get(obj, "priority", int),
        execution_timeout_s=float(timeout) if timeout is not None else None,
        enqueued_at=enqueued_at,
        retry_delay_s=float(retry_delay or 0.0),
        xcom_pull_from=strings(obj, "xcom_pull_from") if "xcom_pull_from" in obj else (),  # older senders
        may_skip=strings(obj, "may_skip") if "may_skip" in obj else (),  # older senders: may skip nothing
    )


def decode_result(body: bytes) -> TaskResult:
    obj = unpack(body)
    exit_code = get(obj, "exit_code", int, optional=True)
    return TaskResult(
        envelope_id=nonempty(obj, "envelope_id"),
        key=key_from(obj),
        state=nonempty(obj, "state"),
        exit_code=exit_code,
        hostname=get(obj, "hostname", str),
        started_at=dt(get(obj, "started_at", (int, float), optional=True), "started_at"),
        ended_at=dt(get(obj, "ended_at", (int, float), optional=True), "ended_at"),
        error=get(obj, "error", str),
    )


# --- AMQP properties -----------------------------------------------------------


def envelope_properties(envelope: TaskEnvelope, reply_to: str, max_priority: int) -> dict[str, Any]:
    """The AMQP properties DESIGN.md fixes for a task envelope (aio-pika Message kwargs)."""
    return {
        "content_type": CONTENT_TYPE,
        "delivery_mode": PERSISTENT,
        "message_id": envelope.id,
        "correlation_id": envelope.id,
        "reply_to": reply_to,
        "priority": amqp_priority(envelope.priority, max_priority),
        "type": TASK_MESSAGE_TYPE,
        "app_id": APP_ID,
        "timestamp": envelope.enqueued_at,
    }


def result_properties(result: TaskResult) -> dict[str, Any]:
    return {
        "content_type": CONTENT_TYPE,
        "delivery_mode": PERSISTENT,
        "correlation_id": result.envelope_id,
        "type": RESULT_MESSAGE_TYPE,
        "app_id": APP_ID,
        "timestamp": now(),
    }


def amqp_priority(priority_weight: int, max_priority: int) -> int:
    """Clamp Airflow's unbounded priority_weight into the queue's 0..max_priority."""
    return max(0, min(int(priority_weight), max_priority))
