"""Outcomes that user code raises on purpose: skip, fail without retry, time out.

These are *not* :class:`rabbitrun.errors.RabbitrunError` subclasses: they are
how a task tells the runner what happened, not library failures. The Airflow
names are kept as aliases so ported DAG files keep working unchanged.
"""

from __future__ import annotations

__all__ = [
    "AirflowFailException",
    "AirflowSkipException",
    "AirflowTaskTimeout",
    "FailTask",
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


AirflowSkipException = SkipTask
AirflowFailException = FailTask
AirflowTaskTimeout = TaskTimeout
