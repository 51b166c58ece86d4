"""Attempts that would otherwise never end: stuck in queued, or zombies; the scheduler fails or retries them.

Synchronous and broker-free so the scheduler loop can run it in a thread and
tests can call it directly. Each change is a compare-and-set, as another
scheduler sharing the PostgreSQL database may handle the same row; the
:data:`OutcomeHook` is told of every attempt the scheduler ends itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from rabbitrun.authoring import DagBag
from rabbitrun.errors import DagError
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models import attempts, transitions
from rabbitrun.models.tables import TaskInstance
from rabbitrun.protocol import TaskEnvelope
from rabbitrun.settings import Settings
from rabbitrun.states import TaskState

log = logging.getLogger("rabbitrun.scheduler")


#: Told of each attempt the scheduler ends itself: (key, new state, cause), e.g. for metrics.
OutcomeHook = Callable[[TaskInstanceKey, str, str], None]


def ignore_outcome(_key: TaskInstanceKey, _state: str, _cause: str) -> None:
    """The default OutcomeHook."""


def surface_stuck_queued(
    session: Session, settings: Settings, now: datetime, on_outcome: OutcomeHook = ignore_outcome
) -> list[TaskEnvelope]:
    """QUEUED longer than task_queued_timeout_s: never silent. Fail it, or re-publish it."""
    cutoff = now - timedelta(seconds=settings.core.task_queued_timeout_s)
    stuck = (
        session.execute(
            select(TaskInstance).where(TaskInstance.state == TaskState.QUEUED.value, TaskInstance.queued_at < cutoff)
        )
        .scalars()
        .all()
    )
    envelopes: list[TaskEnvelope] = []
    for ti in stuck:
        reason = (
            f"stuck in queued for over {settings.core.task_queued_timeout_s:g}s: no worker claimed it "
            f"(is a worker consuming queue {ti.queue!r}?)"
        )
        to = TaskState.SCHEDULED if settings.core.task_queued_timeout_action == "requeue" else TaskState.FAILED
        key = TaskInstanceKey(ti.dag_id, ti.task_id, ti.run_id, ti.map_index, ti.try_number)
        # compare-and-set on the envelope seen: another scheduler may have handled it already
        if transitions.end_stuck_queued(session, key, ti.envelope_id, to, reason, now):
            log.warning("%s.%s run=%s try=%s: %s", ti.dag_id, ti.task_id, ti.run_id, ti.try_number, reason)
            if to == TaskState.FAILED:  # the try ended: its history row says how
                attempts.record_attempt(session, key, to.value, None, now, None, None, reason)
            on_outcome(key, to.value, "stuck_in_queued")
    session.commit()
    return envelopes


def fail_zombies(
    session: Session, dagbag: DagBag, settings: Settings, now: datetime, on_outcome: OutcomeHook = ignore_outcome
) -> list[tuple[str, str]]:
    """RUNNING attempts whose worker stopped heartbeating: fail or retry them (after the task's
    retry_delay, as for any other failure)."""
    cutoff = now - timedelta(seconds=settings.scheduler.zombie_threshold_s)
    zombies = (
        session.execute(
            select(TaskInstance).where(
                TaskInstance.state == TaskState.RUNNING.value, TaskInstance.last_heartbeat_at < cutoff
            )
        )
        .scalars()
        .all()
    )
    touched = []
    for ti in zombies:
        key = TaskInstanceKey(ti.dag_id, ti.task_id, ti.run_id, ti.map_index, ti.try_number)
        reason = (
            f"zombie: no heartbeat from {ti.hostname} (pid {ti.pid}) for over "
            f"{settings.scheduler.zombie_threshold_s:g}s"
        )
        outcome = attempts.failure_outcome(ti.try_number, ti.max_tries, _retry_delay(dagbag, key), reason, now)
        if attempts.finish(session, key, outcome):
            log.warning("%s: %s -> %s", key, reason, outcome.state)
            touched.append((ti.dag_id, ti.run_id))
            on_outcome(key, outcome.state.value, "zombie")
    return touched


def _retry_delay(dagbag: DagBag, key: TaskInstanceKey) -> timedelta:
    """The task's delay before this try's retry; none when its DAG cannot be loaded right now."""
    try:
        return dagbag.get_dag(key.dag_id).get_task(key.task_id).retry_delay_for(key.try_number)
    except DagError:  # DagNotFound, TaskNotFound
        return timedelta(0)
