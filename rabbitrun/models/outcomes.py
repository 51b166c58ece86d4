"""How an attempt ends, as values: what a task process decides and its worker records.

Pure and without SQLAlchemy (a task process imports it; DESIGN "Task process boundary"):
:mod:`rabbitrun.models.attempts` writes them and re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rabbitrun.states import TaskState


def utcnow() -> datetime:
    """Aware UTC now: every time rabbitrun stores or compares (the DB keeps UTC)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Finish:
    """The final word on one attempt, decided by the runner or the worker parent. ``skip``: task ids
    of its run that a successful attempt skips (a branch not taken), recorded with it."""

    state: TaskState
    ended_at: datetime
    reason: str | None = None
    next_retry_at: datetime | None = None
    skip: tuple[str, ...] = ()


def refused_skips(task_id: str, skip: tuple[str, ...], may_skip: tuple[str, ...] | frozenset[str]) -> str | None:
    """Why a skip list is refused (it names a task that is not downstream of the task, as its DAG
    says), or None when every task id in it may be skipped. A refused list skips nothing and fails
    the attempt: a task cannot skip unrelated tasks of its run."""
    refused = sorted(set(skip) - set(may_skip))
    if not refused:
        return None
    return f"task {task_id!r} may skip only its downstream tasks; refused to skip {refused}"


@dataclass(frozen=True, slots=True)
class RescheduleHistory:
    """How long a sensor's try has been waiting: when its first poke started, and how many
    times it was rescheduled since."""

    first_started_at: datetime | None
    reschedules: int


def failure_outcome(
    try_number: int, max_tries: int, retry_delay: timedelta | None, reason: str, now: datetime, *, retry: bool = True
) -> Finish:
    """Pure decision: up_for_retry while tries remain (try_number <= max_tries), else failed."""
    if retry and try_number <= max_tries:
        return Finish(TaskState.UP_FOR_RETRY, now, reason, now + (retry_delay or timedelta(0)))
    return Finish(TaskState.FAILED, now, reason)
