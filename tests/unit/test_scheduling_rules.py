"""Attempt claim/finish/heartbeat by compare-and-set, the retry decision, and the scheduler's decisions
(rabbitrun.scheduler.runs, .readiness, .queueing, .recovery) against a migrated SQLite file and a real
DagBag of a tmp dags folder."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from rabbitrun.errors import PublishNotConfirmed, Unroutable
from rabbitrun.executor import PublishFailure
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models import attempts, runs
from rabbitrun.models.tables import TaskAttempt, TaskInstance, XComRow
from rabbitrun.protocol import TaskEnvelope
from rabbitrun.scheduler import queueing, readiness, recovery
from rabbitrun.scheduler.runs import finish_runs_if_done, start_queued_runs
from rabbitrun.states import TaskState
from tests.support.world import NOW, World, attempt_key, queued_root, run_row, set_ti, start_run, ti_row

# --- failure_outcome (pure) --------------------------------------------------------------


@pytest.mark.parametrize(
    "try_number,max_tries,state",
    [
        (1, 1, TaskState.UP_FOR_RETRY),
        (1, 3, TaskState.UP_FOR_RETRY),
        (3, 3, TaskState.UP_FOR_RETRY),
        (4, 3, TaskState.FAILED),
        (1, 0, TaskState.FAILED),
        (2, 1, TaskState.FAILED),
    ],
)
def test_failure_retries_while_try_number_is_at_most_max_tries(
    try_number: int, max_tries: int, state: TaskState
) -> None:
    assert attempts.failure_outcome(try_number, max_tries, timedelta(seconds=30), "boom", NOW).state == state


def test_retry_is_due_after_the_retry_delay() -> None:
    outcome = attempts.failure_outcome(1, 2, timedelta(seconds=30), "boom", NOW)
    assert outcome == attempts.Finish(TaskState.UP_FOR_RETRY, NOW, "boom", NOW + timedelta(seconds=30))


def test_retry_without_a_delay_is_due_at_once() -> None:
    assert attempts.failure_outcome(1, 2, None, "boom", NOW).next_retry_at == NOW


def test_failure_without_retry_fails_even_with_tries_left() -> None:
    outcome = attempts.failure_outcome(1, 5, timedelta(seconds=30), "AirflowFailException", NOW, retry=False)
    assert outcome == attempts.Finish(TaskState.FAILED, NOW, "AirflowFailException", None)


# --- claim ---------------------------------------------------------------------------------


def test_claim_of_a_queued_attempt_with_its_try_number_wins(world: World) -> None:
    queued_root(world)
    claim = attempts.claim(world.session, attempt_key("chain", "root"), hostname="w1", pid=42, now=NOW)
    assert (claim.won, claim.state, claim.try_number, claim.max_tries, claim.queue) == (
        True,
        "running",
        1,
        1,
        "default",
    )
    assert claim.run is not None and claim.run.run_id == "r1"
    ti = ti_row(world, "chain", "root")
    assert (ti.state, ti.hostname, ti.pid, ti.start_date, ti.last_heartbeat_at) == ("running", "w1", 42, NOW, NOW)


def test_claim_with_the_wrong_try_number_loses_and_reports_the_current_state(world: World) -> None:
    queued_root(world)
    claim = attempts.claim(world.session, attempt_key("chain", "root", try_number=2), hostname="w1", pid=42, now=NOW)
    assert (claim.won, claim.state, claim.try_number) == (False, "queued", 1)
    assert ti_row(world, "chain", "root").state == "queued"


def test_second_claim_of_the_same_attempt_loses(world: World) -> None:
    queued_root(world)
    assert attempts.claim(world.session, attempt_key("chain", "root"), hostname="w1", pid=42, now=NOW).won
    again = attempts.claim(
        world.session, attempt_key("chain", "root"), hostname="w2", pid=43, now=NOW + timedelta(seconds=1)
    )
    assert (again.won, again.state) == (False, "running")
    assert ti_row(world, "chain", "root").hostname == "w1"


def test_claim_retried_by_the_same_process_after_a_lost_commit_answer_wins_again(world: World) -> None:
    queued_root(world)
    assert attempts.claim(world.session, attempt_key("chain", "root"), hostname="w1", pid=42, now=NOW).won
    assert attempts.claim(world.session, attempt_key("chain", "root"), hostname="w1", pid=42, now=NOW).won


@pytest.mark.parametrize("state", ["running", "success", "failed", "up_for_retry", "none"])
def test_claim_of_an_attempt_that_is_not_queued_loses(world: World, state: str) -> None:
    queued_root(world)
    set_ti(world, "chain", "root", state=state)
    claim = attempts.claim(world.session, attempt_key("chain", "root"), hostname="w1", pid=42, now=NOW)
    assert (claim.won, claim.state) == (False, state)


def test_claim_of_a_missing_task_instance_loses_with_state_none(world: World) -> None:
    queued_root(world)
    claim = attempts.claim(world.session, attempt_key("chain", "nope"), hostname="w1", pid=42, now=NOW)
    assert (claim.won, claim.state, claim.try_number) == (False, None, None)
    claim = attempts.claim(world.session, attempt_key("chain", "root", run_id="other"), hostname="w1", pid=42, now=NOW)
    assert claim.state is None


def test_claim_deletes_the_task_instances_previous_xcoms_only(world: World) -> None:
    queued_root(world)
    for task_id in ("root", "child"):
        world.session.add(
            XComRow(
                dag_id="chain",
                task_id=task_id,
                run_id="r1",
                map_index=-1,
                key="return_value",
                value=b"1",
                timestamp=NOW,
            )
        )
    world.session.commit()
    assert attempts.claim(world.session, attempt_key("chain", "root"), hostname="w1", pid=42, now=NOW).won
    left = world.session.execute(select(XComRow.task_id)).scalars().all()
    assert left == ["child"]


def test_losing_claim_keeps_the_xcoms(world: World) -> None:
    queued_root(world)
    world.session.add(
        XComRow(dag_id="chain", task_id="root", run_id="r1", map_index=-1, key="k", value=b"1", timestamp=NOW)
    )
    world.session.commit()
    assert not attempts.claim(world.session, attempt_key("chain", "root", 2), hostname="w1", pid=42, now=NOW).won
    assert world.session.execute(select(func.count()).select_from(XComRow)).scalar_one() == 1


# --- finish ------------------------------------------------------------------------------------


@pytest.mark.parametrize("pass_started_at", [True, False], ids=["runner_path", "parent_path"])
def test_finish_from_running_records_state_and_an_attempt_row_once(world: World, pass_started_at: bool) -> None:
    queued_root(world)
    attempts.claim(world.session, attempt_key("chain", "root"), hostname="w1", pid=42, now=NOW, envelope_id="e1")
    ended = NOW + timedelta(seconds=5)
    outcome = attempts.Finish(TaskState.SUCCESS, ended)
    started = NOW if pass_started_at else None
    assert attempts.finish(world.session, attempt_key("chain", "root"), outcome, started_at=started, envelope_id="e1")
    ti = ti_row(world, "chain", "root")
    assert (ti.state, ti.end_date, ti.duration) == ("success", ended, 5.0)
    row = world.session.execute(select(TaskAttempt)).scalar_one()
    assert (row.task_id, row.try_number, row.state, row.hostname, row.pid, row.start_date, row.end_date) == (
        "root",
        1,
        "success",
        "w1",
        42,
        NOW,
        ended,
    )
    later = attempts.Finish(TaskState.FAILED, ended + timedelta(seconds=1), "late")
    assert not attempts.finish(world.session, attempt_key("chain", "root"), later, started_at=started)
    assert ti_row(world, "chain", "root").state == "success", "the first decision stands"


def test_a_finish_by_another_delivery_than_the_claiming_one_does_nothing(world: World) -> None:
    """The fencing token: a worker that lost its lease (the attempt now runs as another delivery)
    cannot end the attempt; the delivery that claimed it can."""
    queued_root(world)
    key = attempt_key("chain", "root")
    assert attempts.claim(world.session, key, hostname="w2", pid=7, now=NOW, envelope_id="e-new").won
    stale = attempts.Finish(TaskState.FAILED, NOW + timedelta(seconds=1), "stale worker")
    assert not attempts.finish(world.session, key, stale, started_at=NOW, envelope_id="e-old")
    assert not attempts.finish(world.session, key, stale, started_at=NOW, envelope_id=None)
    assert ti_row(world, "chain", "root").state == "running"
    done = attempts.Finish(TaskState.SUCCESS, NOW + timedelta(seconds=2))
    assert attempts.finish(world.session, key, done, started_at=NOW, envelope_id="e-new")
    assert ti_row(world, "chain", "root").state == "success"


def test_finish_for_another_try_number_does_nothing(world: World) -> None:
    queued_root(world)
    attempts.claim(world.session, attempt_key("chain", "root"), hostname="w1", pid=42, now=NOW)
    assert not attempts.finish(world.session, attempt_key("chain", "root", 2), attempts.Finish(TaskState.SUCCESS, NOW))
    assert ti_row(world, "chain", "root").state == "running"
    assert world.session.execute(select(func.count()).select_from(TaskAttempt)).scalar_one() == 0


def test_finish_of_an_unclaimed_attempt_does_nothing(world: World) -> None:
    queued_root(world)
    assert not attempts.finish(
        world.session, attempt_key("chain", "root"), attempts.Finish(TaskState.SUCCESS, NOW), started_at=NOW
    )
    assert ti_row(world, "chain", "root").state == "queued"


def test_finish_as_up_for_retry_stores_when_the_retry_is_due(world: World) -> None:
    queued_root(world)
    attempts.claim(world.session, attempt_key("chain", "root"), hostname="w1", pid=42, now=NOW)
    outcome = attempts.failure_outcome(1, 1, timedelta(minutes=5), "boom", NOW)
    assert attempts.finish(world.session, attempt_key("chain", "root"), outcome)
    ti = ti_row(world, "chain", "root")
    assert (ti.state, ti.reason, ti.next_retry_at) == ("up_for_retry", "boom", NOW + timedelta(minutes=5))


# --- heartbeat ----------------------------------------------------------------------------------


def test_heartbeat_touches_only_running_attempts_of_the_given_envelopes(world: World) -> None:
    start_run(world, "prio")
    envelopes = {e.key.task_id: e for e in readiness.schedule(world.session, world.dagbag, world.settings, NOW)}
    for task_id in ("low", "high"):
        attempts.claim(world.session, attempt_key("prio", task_id), hostname="w1", pid=1, now=NOW)
    later = NOW + timedelta(seconds=30)
    ids = [envelopes["low"].id, envelopes["mid"].id, "no-such-envelope"]  # mid is only queued
    assert attempts.heartbeat(world.session, ids, later) == 1
    assert ti_row(world, "prio", "low").last_heartbeat_at == later
    assert ti_row(world, "prio", "high").last_heartbeat_at == NOW
    assert ti_row(world, "prio", "mid").last_heartbeat_at is None


def test_heartbeat_of_no_envelopes_touches_nothing(world: World) -> None:
    assert attempts.heartbeat(world.session, [], NOW) == 0


# --- start_queued_runs and schedule ----------------------------------------------------------------


def test_starting_a_queued_run_creates_one_task_instance_per_task(world: World) -> None:
    runs.create_run(world.session, "chain", "r1", {}, NOW)
    started = start_queued_runs(world.session, world.dagbag, world.settings, NOW)
    assert [r.run_id for r in started] == ["r1"]
    assert run_row(world, "chain").state == "running"
    tis = world.session.execute(select(TaskInstance)).scalars().all()
    assert sorted(t.task_id for t in tis) == ["child", "cleanup", "root"]
    assert {(t.state, t.try_number, t.map_index, t.queue) for t in tis} == {("none", 0, -1, "default")}
    assert {t.task_id: t.max_tries for t in tis} == {"root": 1, "child": 0, "cleanup": 0}
    assert start_queued_runs(world.session, world.dagbag, world.settings, NOW) == []


def test_run_of_an_unknown_dag_fails_instead_of_starting(world: World) -> None:
    runs.create_run(world.session, "ghost", "r1", {}, NOW)
    assert start_queued_runs(world.session, world.dagbag, world.settings, NOW) == []
    assert run_row(world, "ghost").state == "failed"


def test_schedule_queues_only_root_tasks_with_try_one_and_an_envelope(world: World) -> None:
    start_run(world, "chain")
    envelopes = readiness.schedule(world.session, world.dagbag, world.settings, NOW)
    assert [e.key.task_id for e in envelopes] == ["root"]
    (envelope,) = envelopes
    assert envelope.key == TaskInstanceKey("chain", "root", "r1", -1, 1)
    assert (envelope.dag_file, envelope.queue, envelope.execution_timeout_s, envelope.enqueued_at) == (
        "sched_dags.py",
        "default",
        30.0,
        NOW,
    )
    assert envelope.retry_delay_s == 300.0  # the default retry_delay: the worker needs it to record a death
    root = ti_row(world, "chain", "root")
    assert (root.state, root.try_number, root.envelope_id, root.queued_at) == ("queued", 1, envelope.id, NOW)
    assert len(envelope.id) == 32
    assert ti_row(world, "chain", "child").state == "none" and ti_row(world, "chain", "cleanup").state == "none"


def test_queued_envelopes_rebuild_each_queued_task_instances_envelope_unchanged(world: World) -> None:
    envelope = queued_root(world)
    start_run(world, "prio")
    readiness.schedule(world.session, world.dagbag, world.settings, NOW)
    set_ti(world, "prio", "low", state="running")  # claimed: not republished
    rebuilt = queueing.queued_envelopes(world.session, world.dagbag, NOW + timedelta(minutes=1))
    assert [e.key.task_id for e in rebuilt] == ["high", "mid", "root"]  # highest priority first
    assert rebuilt[-1] == envelope  # same id, try, queue, limits and enqueued_at: the claim keeps it single


def test_schedule_does_not_queue_an_already_queued_task_again(world: World) -> None:
    queued_root(world)
    assert readiness.schedule(world.session, world.dagbag, world.settings, NOW) == []
    assert ti_row(world, "chain", "root").try_number == 1


def test_every_queued_task_instance_gets_its_own_envelope_id(world: World) -> None:
    start_run(world, "prio")
    envelopes = readiness.schedule(world.session, world.dagbag, world.settings, NOW)
    assert len({e.id for e in envelopes}) == 3
    assert {e.key.task_id: e.queue for e in envelopes} == {"low": "default", "mid": "default", "high": "high_priority"}


def test_downstream_is_queued_once_its_upstream_succeeded(world: World) -> None:
    queued_root(world)
    set_ti(world, "chain", "root", state="success")
    envelopes = readiness.schedule(world.session, world.dagbag, world.settings, NOW)
    assert sorted(e.key.task_id for e in envelopes) == ["child", "cleanup"]
    assert all(e.key.try_number == 1 for e in envelopes)


def test_failed_root_marks_all_success_downstream_upstream_failed_and_queues_all_done(world: World) -> None:
    queued_root(world)
    set_ti(world, "chain", "root", state="failed")
    envelopes = readiness.schedule(world.session, world.dagbag, world.settings, NOW)
    assert [e.key.task_id for e in envelopes] == ["cleanup"]
    child = ti_row(world, "chain", "child")
    assert child.state == "upstream_failed" and child.reason and "upstream" in child.reason


def test_retry_that_is_not_due_yet_is_not_queued(world: World) -> None:
    queued_root(world)
    set_ti(world, "chain", "root", state="up_for_retry", next_retry_at=NOW + timedelta(minutes=1))
    assert readiness.schedule(world.session, world.dagbag, world.settings, NOW) == []
    assert ti_row(world, "chain", "root").state == "up_for_retry"
    assert run_row(world, "chain").state == "running"


def test_retry_that_is_due_is_queued_with_the_next_try_number(world: World) -> None:
    first = queued_root(world)
    set_ti(world, "chain", "root", state="up_for_retry", next_retry_at=NOW - timedelta(seconds=1), reason="boom")
    (envelope,) = readiness.schedule(world.session, world.dagbag, world.settings, NOW)
    assert envelope.key.try_number == 2 and envelope.id != first.id
    root = ti_row(world, "chain", "root")
    assert (root.state, root.try_number, root.envelope_id, root.reason) == ("queued", 2, envelope.id, None)


# --- put_back ------------------------------------------------------------------------------------------


def test_unroutable_envelope_fails_its_task_with_a_reason_naming_the_queue(world: World) -> None:
    envelope = queued_root(world)
    error = Unroutable("rabbitrun.tasks", "default", "default")
    queueing.put_back(world.session, [PublishFailure(envelope, error)], NOW)
    root = ti_row(world, "chain", "root")
    assert root.state == "failed" and root.end_date == NOW
    assert root.reason and "'default'" in root.reason and "queue" in root.reason
    attempt = world.session.execute(select(TaskAttempt)).scalar_one()  # the try's history says so too
    assert (attempt.try_number, attempt.state, attempt.reason) == (1, "failed", root.reason)


def test_other_publish_failure_puts_the_task_back_and_the_next_pass_republishes_the_same_try(world: World) -> None:
    envelope = queued_root(world)
    error = PublishNotConfirmed("default", "timeout")
    queueing.put_back(world.session, [PublishFailure(envelope, error)], NOW)
    root = ti_row(world, "chain", "root")
    assert root.state == "scheduled" and root.reason and "publish failed" in root.reason
    (again,) = readiness.schedule(world.session, world.dagbag, world.settings, NOW + timedelta(seconds=1))
    assert again.key == envelope.key, "a re-publish keeps the try_number"
    root = ti_row(world, "chain", "root")
    assert (root.state, root.try_number, root.envelope_id) == ("queued", 1, again.id)


def test_put_back_ignores_a_failure_for_an_envelope_that_is_no_longer_current(world: World) -> None:
    envelope = queued_root(world)
    set_ti(world, "chain", "root", state="running")
    queueing.put_back(world.session, [PublishFailure(envelope, PublishNotConfirmed("d", "x"))], NOW)
    assert ti_row(world, "chain", "root").state == "running"
    set_ti(world, "chain", "root", state="queued", envelope_id="newer")
    queueing.put_back(world.session, [PublishFailure(envelope, Unroutable("x", "d", "d"))], NOW)
    assert ti_row(world, "chain", "root").state == "queued"


# --- stuck in queued, zombies --------------------------------------------------------------------------


def test_task_queued_too_long_is_failed_with_a_reason_naming_its_queue(world: World) -> None:
    queued_root(world)
    settings = world.with_settings(core__task_queued_timeout_s="60")
    recovery.surface_stuck_queued(world.session, settings, NOW + timedelta(seconds=59))
    assert ti_row(world, "chain", "root").state == "queued"
    recovery.surface_stuck_queued(world.session, settings, NOW + timedelta(seconds=61))
    root = ti_row(world, "chain", "root")
    assert root.state == "failed" and root.end_date == NOW + timedelta(seconds=61)
    assert root.reason and "stuck in queued" in root.reason and "'default'" in root.reason
    attempt = world.session.execute(select(TaskAttempt)).scalar_one()
    assert (attempt.try_number, attempt.state, attempt.end_date) == (1, "failed", root.end_date)


def test_task_queued_too_long_is_requeued_when_so_configured(world: World) -> None:
    first = queued_root(world)
    settings = world.with_settings(core__task_queued_timeout_s="60", core__task_queued_timeout_action="requeue")
    later = NOW + timedelta(seconds=61)
    recovery.surface_stuck_queued(world.session, settings, later)
    root = ti_row(world, "chain", "root")
    assert root.state == "scheduled" and root.reason and "'default'" in root.reason
    (again,) = readiness.schedule(world.session, world.dagbag, settings, later)
    assert again.key.try_number == 1 and again.id != first.id


def test_attempt_claimed_from_an_older_envelope_of_the_same_try_is_kept_alive_by_its_lease(world: World) -> None:
    old = queued_root(world)
    settings = world.with_settings(core__task_queued_timeout_s="60", core__task_queued_timeout_action="requeue")
    t = NOW + timedelta(seconds=61)
    recovery.surface_stuck_queued(world.session, settings, t)
    (new,) = readiness.schedule(world.session, world.dagbag, settings, t)
    assert new.key == old.key and new.id != old.id
    # a worker appears and receives the old envelope first: the claim is by key and try, so it wins
    assert attempts.claim(world.session, old.key, hostname="w1", pid=42, now=t, envelope_id=old.id).won
    for beat in range(1, 20):  # the worker renews the lease of the envelope it runs every 2 s
        attempts.heartbeat(world.session, [old.id], t + timedelta(seconds=2 * beat))
    assert recovery.requeue_lost_attempts(world.session, settings, t + timedelta(seconds=45)) == []
    assert ti_row(world, "chain", "root").state == "running"


def _claimed_root(world: World) -> TaskEnvelope:
    envelope = queued_root(world)
    claim = attempts.claim(world.session, envelope.key, hostname="w1", pid=42, now=NOW, envelope_id=envelope.id)
    assert claim.won
    return envelope


def test_an_expired_lease_runs_the_attempt_again_as_the_same_try_without_using_a_retry(world: World) -> None:
    first = _claimed_root(world)
    settings = world.with_settings(worker__lease_s="10")
    assert recovery.requeue_lost_attempts(world.session, settings, NOW + timedelta(seconds=9)) == []
    assert recovery.requeue_lost_attempts(world.session, settings, NOW + timedelta(seconds=11)) == [("chain", "r1")]
    root = ti_row(world, "chain", "root")
    assert (root.state, root.try_number, root.infra_retries) == ("scheduled", 1, 1)
    assert root.reason and "lease expired" in root.reason and "w1" in root.reason and "1 of 3" in root.reason
    assert world.session.execute(select(func.count()).select_from(TaskAttempt)).scalar_one() == 0  # no try ended
    (again,) = readiness.schedule(world.session, world.dagbag, settings, NOW + timedelta(seconds=11))
    assert again.key == first.key and again.id != first.id  # the same try, in a new envelope


def test_a_lease_renewed_just_before_the_check_keeps_the_attempt(world: World) -> None:
    envelope = _claimed_root(world)
    settings = world.with_settings(worker__lease_s="10")
    attempts.heartbeat(world.session, [envelope.id], NOW + timedelta(seconds=8))
    assert recovery.requeue_lost_attempts(world.session, settings, NOW + timedelta(seconds=15)) == []
    assert ti_row(world, "chain", "root").state == "running"


def test_only_the_envelope_holding_the_lease_renews_it(world: World) -> None:
    _claimed_root(world)
    settings = world.with_settings(worker__lease_s="10")
    assert attempts.heartbeat(world.session, ["an-older-envelope"], NOW + timedelta(seconds=8)) == 0
    assert recovery.requeue_lost_attempts(world.session, settings, NOW + timedelta(seconds=11)) == [("chain", "r1")]


def test_a_task_that_keeps_losing_its_worker_fails_after_max_infra_retries(world: World) -> None:
    settings = world.with_settings(worker__lease_s="10", core__max_infra_retries="2")
    t = NOW
    for lost in (1, 2):
        envelope = queued_root(world) if lost == 1 else readiness.schedule(world.session, world.dagbag, settings, t)[0]
        assert attempts.claim(world.session, envelope.key, hostname="w1", pid=42, now=t, envelope_id=envelope.id).won
        t += timedelta(seconds=11)
        recovery.requeue_lost_attempts(world.session, settings, t)
        assert ti_row(world, "chain", "root").infra_retries == lost
    (envelope,) = readiness.schedule(world.session, world.dagbag, settings, t)
    attempts.claim(world.session, envelope.key, hostname="w1", pid=42, now=t, envelope_id=envelope.id)
    recovery.requeue_lost_attempts(world.session, settings, t + timedelta(seconds=11))
    root = ti_row(world, "chain", "root")
    assert (root.state, root.try_number) == ("failed", 1)  # root has retries=1: none of them was used
    assert root.reason and "after 2 infrastructure retries" in root.reason
    assert world.session.execute(select(TaskAttempt.state)).scalar_one() == "failed"


def test_clearing_a_task_starts_its_infrastructure_retries_afresh(world: World) -> None:
    from rabbitrun.models import clearing

    _claimed_root(world)
    settings = world.with_settings(worker__lease_s="10")
    recovery.requeue_lost_attempts(world.session, settings, NOW + timedelta(seconds=11))
    set_ti(world, "chain", "root", state="failed")
    assert clearing.clear(world.session, "chain", {"root": 1}, run_id="r1") == [("r1", "root")]
    assert ti_row(world, "chain", "root").infra_retries == 0


# --- run completion (Airflow's leaf rule) ------------------------------------------------------------------


def test_run_succeeds_when_every_leaf_succeeded_even_if_an_inner_task_failed(world: World) -> None:
    start_run(world, "leaf_rule")
    set_ti(world, "leaf_rule", "first", state="failed")
    set_ti(world, "leaf_rule", "last", state="success")
    readiness.schedule(world.session, world.dagbag, world.settings, NOW)
    run = run_row(world, "leaf_rule")
    assert (run.state, run.end_date) == ("success", NOW)


def test_run_fails_when_a_leaf_failed(world: World) -> None:
    start_run(world, "leaf_rule")
    set_ti(world, "leaf_rule", "first", state="success")
    set_ti(world, "leaf_rule", "last", state="failed")
    readiness.schedule(world.session, world.dagbag, world.settings, NOW)
    assert run_row(world, "leaf_rule").state == "failed"


def test_run_fails_when_a_leaf_is_upstream_failed(world: World) -> None:
    queued_root(world)
    set_ti(world, "chain", "root", state="failed")
    assert [e.key.task_id for e in readiness.schedule(world.session, world.dagbag, world.settings, NOW)] == ["cleanup"]
    assert run_row(world, "chain").state == "running", "cleanup is still queued"
    set_ti(world, "chain", "cleanup", state="success")
    readiness.schedule(world.session, world.dagbag, world.settings, NOW)
    assert run_row(world, "chain").state == "failed"


def test_run_with_a_task_waiting_for_retry_is_not_finished(world: World) -> None:
    start_run(world, "leaf_rule")
    set_ti(world, "leaf_rule", "first", state="success")
    set_ti(world, "leaf_rule", "last", state="up_for_retry", next_retry_at=NOW + timedelta(hours=1))
    readiness.schedule(world.session, world.dagbag, world.settings, NOW)
    assert run_row(world, "leaf_rule").state == "running"


def test_finish_runs_if_done_applies_the_leaf_rule_too(world: World) -> None:
    start_run(world, "leaf_rule")
    set_ti(world, "leaf_rule", "first", state="failed")
    set_ti(world, "leaf_rule", "last", state="success")
    finish_runs_if_done(world.session, world.dagbag, [("leaf_rule", "r1")], NOW)
    assert run_row(world, "leaf_rule").state == "success"


# --- priority and parallelism ------------------------------------------------------------------------


def test_envelopes_come_out_highest_priority_weight_first(world: World) -> None:
    start_run(world, "prio")
    envelopes = readiness.schedule(world.session, world.dagbag, world.settings, NOW)
    assert [(e.key.task_id, e.priority) for e in envelopes] == [("high", 10), ("mid", 5), ("low", 1)]


def test_parallelism_caps_queued_tasks_and_gives_slots_to_the_highest_priority(world: World) -> None:
    start_run(world, "prio")
    settings = world.with_settings(core__parallelism="2")
    envelopes = readiness.schedule(world.session, world.dagbag, settings, NOW)
    assert [e.key.task_id for e in envelopes] == ["high", "mid"]
    assert ti_row(world, "prio", "low").state == "none"
    assert readiness.schedule(world.session, world.dagbag, settings, NOW) == [], "both slots are taken"
    set_ti(world, "prio", "high", state="success")
    assert [e.key.task_id for e in readiness.schedule(world.session, world.dagbag, settings, NOW)] == ["low"]


def test_running_tasks_count_against_parallelism(world: World) -> None:
    queued_root(world)  # chain.root queued
    attempts.claim(world.session, attempt_key("chain", "root"), hostname="w1", pid=1, now=NOW)
    start_run(world, "prio", run_id="p1")
    settings = world.with_settings(core__parallelism="2")
    assert [e.key.task_id for e in readiness.schedule(world.session, world.dagbag, settings, NOW)] == ["high"]


# --- the full pass skips runs that only wait for results ------------------------------------------------


def test_a_run_is_waiting_for_results_only_while_all_its_unfinished_tasks_are_queued_or_running(world: World) -> None:
    queued_root(world)  # root queued, child and cleanup still none: something may become ready
    waiting = readiness._waiting_for_results()
    assert world.session.execute(waiting).all() == []
    for task_id in ("child", "cleanup"):
        set_ti(world, "chain", task_id, state="queued")
    set_ti(world, "chain", "root", state="running")
    assert world.session.execute(waiting).all() == [("chain", "r1")]
    assert readiness.schedule(world.session, world.dagbag, world.settings, NOW) == []
    set_ti(world, "chain", "cleanup", state="up_for_retry")  # a retry to wait for: evaluated again
    assert world.session.execute(waiting).all() == []
    for task_id in ("root", "child", "cleanup"):
        set_ti(world, "chain", task_id, state="success")  # all finished: the full pass finishes the run
    assert world.session.execute(waiting).all() == []
    readiness.schedule(world.session, world.dagbag, world.settings, NOW)
    assert run_row(world, "chain").state == "success"
