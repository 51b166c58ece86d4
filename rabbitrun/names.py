"""Every AMQP name that is a contract: exchanges, queues, connection names, consumer tags.

Scripts, dashboards and the docs rely on these spellings (DESIGN.md, Topology).
Nothing else in rabbitrun builds a broker name with an f-string.
"""

from __future__ import annotations

from dataclasses import dataclass

ROOT = "rabbitrun"

#: Header that carries why a message was dead-lettered.
REASON_HEADER = "x-rabbitrun-reason"
#: AMQP ``app_id`` of every message rabbitrun publishes.
APP_ID = "rabbitrun"
#: AMQP ``type`` of task envelopes and results.
TASK_MESSAGE_TYPE = "rabbitrun.task"
TASK_LOGGER = "rabbitrun.task"  # the logger of task code (ti.log, print()); lines go to the attempt's file
RESULT_MESSAGE_TYPE = "rabbitrun.result"
#: The pool of every task that names none (Airflow's spelling); it always exists.
DEFAULT_POOL = "default_pool"


@dataclass(frozen=True, slots=True)
class Names:
    """Names for one installation; ``prefix`` lets several share a vhost."""

    prefix: str = ""

    def _n(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    @property
    def tasks_exchange(self) -> str:
        return self._n(f"{ROOT}.tasks")

    @property
    def control_exchange(self) -> str:
        return self._n(f"{ROOT}.control")

    @property
    def events_exchange(self) -> str:
        return self._n(f"{ROOT}.events")

    @property
    def dead_letter_exchange(self) -> str:
        return self._n(f"{ROOT}.dlx")

    @property
    def dead_letter_queue(self) -> str:
        return self._n(f"{ROOT}.dead")

    def task_queue(self, queue: str) -> str:
        """The durable AMQP queue behind a logical queue such as ``default``."""
        return self._n(f"{ROOT}.q.{queue}")

    def reply_queue(self, scheduler_id: str) -> str:
        return self._n(f"{ROOT}.replies.{scheduler_id}")

    def control_queue(self, hostname: str) -> str:
        """A worker's exclusive queue for inspect/control requests."""
        return self._n(f"{ROOT}.control.{hostname}")

    def logical_queue(self, amqp_queue: str) -> str | None:
        """Inverse of :meth:`task_queue`; None when the name is not a task queue."""
        head = self.task_queue("")
        name = amqp_queue[len(head) :] if amqp_queue.startswith(head) else ""
        return name or None  # "rabbitrun.q." alone names no logical queue


def connection_name(role: str, who: str) -> str:
    """Connection name shown in the management UI, e.g. ``rabbitrun-worker w1@host``."""
    return f"{ROOT}-{role} {who}"


def consumer_tag(role: str, who: str, queue: str) -> str:
    """Consumer tag shown in the management UI, e.g. ``rabbitrun-worker w1@host default``."""
    return f"{ROOT}-{role} {who} {queue}"


# --- routing keys on the control and events exchanges (topic) ----------------------------

CONTROL_BROADCAST = "broadcast"
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"  # RabbitMQ's direct reply-to pseudo queue


def _word(text: str) -> str:
    """One topic-routing-key word: dots would split it."""
    return text.replace(".", "_")


def control_key(hostname: str) -> str:
    return f"worker.{_word(hostname)}"


def worker_event_key(hostname: str, event: str) -> str:
    """``worker.<hostname>.<event>``: heartbeat, worker_offline."""
    return f"worker.{_word(hostname)}.{event}"


def heartbeat_key(hostname: str) -> str:
    return worker_event_key(hostname, "heartbeat")


def task_event_key(dag_id: str, task_id: str, event: str) -> str:
    return f"task.{_word(dag_id)}.{_word(task_id)}.{event}"


def log_key(dag_id: str, task_id: str) -> str:
    return f"log.{_word(dag_id)}.{_word(task_id)}"


def task_events_pattern(dag_id: str | None) -> str:
    return f"task.{_word(dag_id)}.#" if dag_id else "task.#"
