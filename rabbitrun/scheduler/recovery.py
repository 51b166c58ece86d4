"""Attempts that would otherwise never end: stuck in queued, or lost with their worker (an expired lease).

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


def requeue_lost_attempts(
    session: Session, settings: Settings, now: datetime, on_outcome: OutcomeHook = ignore_outcome
) -> list[tuple[str, str]]:
    """RUNNING attempts whose lease expired (their worker, host or connection is gone): publish them
    again as the same try, which does not use up ``retries`` (DESIGN rule 3). After
    ``max_infra_retries`` such re-runs the task instance fails with that reason instead: a task that
    keeps killing its workers must not take the fleet down one worker at a time."""
    lease_s = settings.worker.lease_s
    expired_before = now - timedelta(seconds=lease_s)
    lost = (
        session.execute(
            select(TaskInstance).where(
                TaskInstance.state == TaskState.RUNNING.value, TaskInstance.last_heartbeat_at < expired_before
            )
        )
        .scalars()
        .all()
    )
    touched = []
    limit = settings.core.max_infra_retries
    for ti in lost:
        key = TaskInstanceKey(ti.dag_id, ti.task_id, ti.run_id, ti.map_index, ti.try_number)
        lost_for = f"lease expired: {ti.hostname} (pid {ti.pid}) did not renew it for over {lease_s:g}s"
        if ti.infra_retries < limit:
            to = TaskState.SCHEDULED
            reason = f"{lost_for}; running it again, same try (infrastructure retry {ti.infra_retries + 1} of {limit})"
        else:
            to = TaskState.FAILED
            reason = f"{lost_for}, after {limit} infrastructure retries: its workers keep getting lost"
        if transitions.end_lost_attempt(session, key, ti.envelope_id, expired_before, to, reason, now):
            if to == TaskState.FAILED:  # the try ended: its history row says how
                attempts.record_attempt(session, key, to.value, ti.start_date, now, ti.hostname, ti.pid, reason)
            log.warning("%s: %s", key, reason)
            touched.append((ti.dag_id, ti.run_id))
            on_outcome(key, to.value, "lease_expired")
    session.commit()
    return touched
