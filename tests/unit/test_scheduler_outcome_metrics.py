"""Attempts the scheduler ends itself (zombie, stuck in queued, unroutable) are counted in its metrics,
through the OutcomeHook of rabbitrun.scheduler.recovery; same migrated SQLite world as the scheduling rules."""

from __future__ import annotations

from datetime import timedelta

from rabbitrun.errors import PublishNotConfirmed, Unroutable
from rabbitrun.executor import PublishFailure
from rabbitrun.metrics import Metrics
from rabbitrun.models import attempts
from rabbitrun.scheduler import queueing, readiness, recovery
from tests.support.world import NOW, World, attempt_key, queued_root

NAME = "rabbitrun_scheduler_outcomes_total"


def _count(metrics: Metrics, state: str, cause: str, task_id: str = "root") -> float | None:
    return metrics.registry.get_sample_value(
        NAME, {"dag_id": "chain", "task_id": task_id, "state": state, "cause": cause}
    )


def test_a_lease_expiry_is_counted_with_its_cause(world: World) -> None:
    metrics = Metrics()
    queued_root(world)
    attempts.claim(world.session, attempt_key("chain", "root"), hostname="w1", pid=42, now=NOW)
    settings = world.with_settings(worker__lease_s="10")
    recovery.requeue_lost_attempts(world.session, settings, NOW + timedelta(seconds=9), metrics.count_scheduler_outcome)
    assert _count(metrics, "scheduled", "lease_expired") is None
    recovery.requeue_lost_attempts(
        world.session, settings, NOW + timedelta(seconds=11), metrics.count_scheduler_outcome
    )
    assert _count(metrics, "scheduled", "lease_expired") == 1.0


def test_stuck_in_queued_failure_is_counted(world: World) -> None:
    metrics = Metrics()
    queued_root(world)
    settings = world.with_settings(core__task_queued_timeout_s="60")
    recovery.surface_stuck_queued(world.session, settings, NOW + timedelta(seconds=61), metrics.count_scheduler_outcome)
    assert _count(metrics, "failed", "stuck_in_queued") == 1.0


def test_unroutable_failure_is_counted_and_a_retried_publish_is_not(world: World) -> None:
    metrics = Metrics()
    envelope = queued_root(world)
    queueing.put_back(
        world.session, [PublishFailure(envelope, PublishNotConfirmed("d", "x"))], NOW, metrics.count_scheduler_outcome
    )
    assert _count(metrics, "failed", "unroutable") is None
    (again,) = readiness.schedule(world.session, world.dagbag, world.settings, NOW + timedelta(seconds=1))
    queueing.put_back(
        world.session,
        [PublishFailure(again, Unroutable("x", "default", "default"))],
        NOW,
        metrics.count_scheduler_outcome,
    )
    assert _count(metrics, "failed", "unroutable") == 1.0
