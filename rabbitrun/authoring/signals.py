"""Outcomes that user code raises on purpose: skip, fail without retry, time out, reschedule.

These are *not* :class:`rabbitrun.errors.RabbitrunError` subclasses: they are
how a task tells the runner what happened, not library failures. The Airflow
names are kept as aliases so ported DAG files keep working unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = [
    "AirflowFailException",
    "AirflowRescheduleException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "AirflowTaskTimeout",
    "FailTask",
    "RescheduleTask",
    "SensorTimeout",
    "SkipTask",
    "TaskSignal",
    "TaskTimeout",
]


class TaskSignal(Exception):
    """Common base so the runner can tell deliberate outcomes from crashes."""


class SkipTask(TaskSignal):
    """Mark the task instance SKIPPED instead of SUCCESS or FAILED."""


class FailTask(TaskSignal):
    """Mark the task instance FAILED at once, ignoring remaining retries."""


class TaskTimeout(TaskSignal):
    """Raised inside the task process when its soft time limit is reached.

    The task may catch it to clean up; retries still apply afterwards.
    """


class RescheduleTask(TaskSignal):
    """End this attempt as UP_FOR_RESCHEDULE and run it again, same try, at ``reschedule_at``.

    Raised by sensors in reschedule mode: the worker slot is freed between pokes.
    """

    def __init__(self, reschedule_at: datetime) -> None:
        self.reschedule_at = reschedule_at if reschedule_at.tzinfo else reschedule_at.replace(tzinfo=UTC)
        super().__init__(f"rescheduled to {self.reschedule_at.isoformat()}")


class SensorTimeout(FailTask):
    """A sensor waited longer than its ``timeout``: FAILED at once, without retries (as in Airflow)."""


AirflowSkipException = SkipTask
AirflowFailException = FailTask
AirflowTaskTimeout = TaskTimeout
AirflowRescheduleException = RescheduleTask
AirflowSensorTimeout = SensorTimeout
