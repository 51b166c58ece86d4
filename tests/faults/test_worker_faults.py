"""Faults around the worker: SIGKILL, graceful and cold shutdown, time limits, dying task
processes, duplicates. Real processes, real broker, real DB; side effects are counted."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from rabbitrun import protocol
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.tables import TaskAttempt, TaskInstance
from rabbitrun.names import Names
from rabbitrun.worker.pool import AutoscaleLimits, lookahead_prefetch
from tests.support.env import Env
from tests.support.relay import ThreadedRelay
from tests.support.runs import infra_retries, lines, queue_counts, queue_run, run_dag, states, trigger, wait
from tests.support.services import wait_until


def running_count(env: Env, dag_id: str, run_id: str) -> int:
    return sum(1 for r in states(env, dag_id, run_id).values() if r.state == "running")


def attempts_of(env: Env, run_id: str) -> list[tuple[str, int, str]]:
    engine = make_engine(env.settings().database, pooled=False)
    with session_factory(engine)() as session:
        return sorted((a.task_id, a.try_number, a.state) for a in session.query(TaskAttempt).filter_by(run_id=run_id))


def test_sigkilled_worker_tasks_run_again_elsewhere_as_the_same_try_once_each(env: Env) -> None:
    """At default settings: the killed worker's leases expire (10 s) and the scheduler runs its two
    attempts again on the other worker, as the same try, without using a retry."""
    env.scheduler()
    doomed = env.worker()
    run_id = trigger(env, "sleepers", sleep_s=4)
    wait_until(lambda: running_count(env, "sleepers", run_id) == 2, 30, what="two tasks running on the doomed worker")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    env.vars["RABBITRUN__WORKER__HOSTNAME"] = f"w2-{env.prefix}@test"
    env.worker()
    final = wait(env, "sleepers", run_id, timeout_s=120)
    assert final.state == "success", env.logs()
    rows = states(env, "sleepers", run_id)
    assert all(r.state == "success" for r in rows.values())
    for i in range(10):  # each nap finished exactly once (the killed ones never got to append)
        assert len(lines(env, f"nap{i}")) == 1, (i, lines(env, f"nap{i}"))
    assert all(r.try_number == 1 for r in rows.values())  # no retry used up by the lost worker
    rerun = {task for task, count in infra_retries(env, "sleepers", run_id).items() if count}
    assert len(rerun) == 2, rerun  # the two attempts running at the kill, once each
    assert attempts_of(env, run_id) == sorted((f"nap{i}", 1, "success") for i in range(10))


def test_warm_shutdown_lets_running_tasks_finish_and_exits_zero(env: Env) -> None:
    env.scheduler()
    worker = env.worker()
    run_id = trigger(env, "chain3", sleep_s=2)
    wait_until(lambda: lines(env, "first") or running_count(env, "chain3", run_id), 30, what="first task running")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    log = worker.log_path.read_text()  # type: ignore[attr-defined]
    assert "warm shutdown" in log
    first_done = states(env, "chain3", run_id)["first"]
    assert first_done.state == "success"  # finished during the warm shutdown
    assert len(lines(env, "first")) == 1
    assert not lines(env, "second")  # no new delivery was taken after SIGTERM
    env.vars["RABBITRUN__WORKER__HOSTNAME"] = f"w2-{env.prefix}@test"
    env.worker()
    assert wait(env, "chain3", run_id, timeout_s=60).state == "success"
    assert [len(lines(env, n)) for n in ("first", "second", "third")] == [1, 1, 1]


def hosts_of(env: Env, run_id: str) -> list[tuple[str, int, str, str]]:
    """(task_id, try_number, state, hostname) of every attempt row of a run."""
    engine = make_engine(env.settings().database, pooled=False)
    with session_factory(engine)() as session:
        return sorted(
            (a.task_id, a.try_number, a.state, a.hostname or "")
            for a in session.query(TaskAttempt).filter_by(run_id=run_id)
        )


def attempt_starts(env: Env, run_id: str) -> list[tuple[str, int, str, str, datetime]]:
    """(task_id, try_number, state, hostname, start_date) of every attempt row of a run."""
    engine = make_engine(env.settings().database, pooled=False)
    with session_factory(engine)() as session:
        return sorted(
            (a.task_id, a.try_number, a.state, a.hostname or "", a.start_date)
            for a in session.query(TaskAttempt).filter_by(run_id=run_id)
        )


def ask_first_worker(env: Env, command: str) -> list[Any]:
    """The data of the first worker's reply to an inspect command (none if it did not answer in time)."""
    from rabbitrun.client.control import control

    replies = asyncio.run(control(env.settings(), command, destination=f"w1-{env.prefix}@test"))
    return [reply.data for reply in replies]


def reserved(env: Env) -> list[dict[str, object]]:
    """`inspect reserved` of the first worker: deliveries received and waiting for a slot."""
    return [item for data in ask_first_worker(env, "reserved") for item in data]


def worker_stats(env: Env) -> dict[str, Any]:
    answers = wait_until(lambda: ask_first_worker(env, "stats"), 20, what="the worker's stats")
    return dict(answers[0])


def second_worker(env: Env, *extra: str) -> None:
    env.vars["RABBITRUN__WORKER__HOSTNAME"] = f"w2-{env.prefix}@test"
    env.worker(*extra)


def test_warm_shutdown_hands_back_deliveries_waiting_for_a_slot(env: Env, vhost: str) -> None:
    """One slot, ten ready tasks: the running task is acked early, so the broker delivers the next one,
    which waits for the slot. SIGTERM must give it back at once, never start it after the signal."""
    env.vars.update(
        {
            "RABBITRUN__WORKER__CONCURRENCY": "1",
            "RABBITRUN__WORKER__ACK_RUNNING_AFTER_S": "0.5",
            "RABBITRUN__WORKER__SHUTDOWN_TIMEOUT_S": "30",
        }
    )
    env.scheduler()
    worker = env.worker()
    run_id = trigger(env, "sleepers", sleep_s=2)
    queue = Names(env.prefix).task_queue("default")
    wait_until(lambda: reserved(env), 30, what="a delivery waiting for the slot while a task runs")
    signalled_at = datetime.now(UTC)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    w1 = f"w1-{env.prefix}@test"
    # What ran there had started before the signal (on a busy machine the first nap may end and the
    # next start between the `inspect reserved` answer and the signal); nothing started after it.
    on_w1 = [a for a in attempt_starts(env, run_id) if a[3] == w1]
    # (0.5 s: a task handed to its process just before the signal claims a few ms after it)
    started_before = signalled_at + timedelta(seconds=0.5)
    assert on_w1 and all(a[2] == "success" and a[4] < started_before for a in on_w1), (on_w1, signalled_at)
    ran = len(on_w1)
    assert queue_counts(vhost, queue) == (10 - ran, 0)  # the waiting delivery is back in the queue
    assert sum(len(lines(env, f"nap{i}")) for i in range(10)) == ran
    second_worker(env)
    assert wait(env, "sleepers", run_id, timeout_s=120).state == "success", env.logs()
    assert [len(lines(env, f"nap{i}")) for i in range(10)] == [1] * 10
    rows = hosts_of(env, run_id)
    assert len(rows) == 10 and all(r[1] == 1 and r[2] == "success" for r in rows), rows  # one attempt each


def test_shutdown_timeout_terminates_and_requeues_unfinished_tasks(env: Env) -> None:
    env.vars["RABBITRUN__WORKER__SHUTDOWN_TIMEOUT_S"] = "1"
    env.scheduler()
    worker = env.worker()
    run_id = trigger(env, "long_running", sleep_s=5)
    wait_until(lambda: running_count(env, "long_running", run_id) == 1, 30, what="long task running")
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    assert time.monotonic() - started < 15
    row = states(env, "long_running", run_id)["long_task"]
    assert row.state == "queued" and row.try_number == 1  # released, not failed: it runs elsewhere
    assert attempts_of(env, run_id) == [("long_task", 1, "terminated")]
    second_worker(env)
    assert wait(env, "long_running", run_id, timeout_s=60).state == "success", env.logs()
    assert len(lines(env, "long_task")) == 1
    assert attempts_of(env, run_id) == [("long_task", 1, "success")]  # the same try ran to the end


def test_shutdown_releases_an_early_acked_task_and_republishes_it(env: Env, vhost: str) -> None:
    """A long task's delivery is acked early (consumer_timeout); a shutdown that terminates it must
    give it a message again, or nothing would ever run the released attempt."""
    env.vars.update({"RABBITRUN__WORKER__ACK_RUNNING_AFTER_S": "0.5", "RABBITRUN__WORKER__SHUTDOWN_TIMEOUT_S": "1"})
    env.scheduler()
    worker = env.worker()
    run_id = trigger(env, "long_running", sleep_s=12)  # outlives slow waits before the signal
    queue = Names(env.prefix).task_queue("default")
    wait_until(lambda: running_count(env, "long_running", run_id) == 1, 30, what="long task running")
    wait_until(lambda: queue_counts(vhost, queue) == (0, 0), 10, what="its delivery acked early")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    assert states(env, "long_running", run_id)["long_task"].state == "queued"
    assert queue_counts(vhost, queue) == (1, 0)  # republished with a confirm before the worker exited
    second_worker(env)
    assert wait(env, "long_running", run_id, timeout_s=60).state == "success", env.logs()
    assert len(lines(env, "long_task")) == 1
    assert attempts_of(env, run_id) == [("long_task", 1, "success")]


def test_a_claim_later_than_ack_running_after_s_still_gets_the_early_ack(env: Env, vhost: str) -> None:
    """An early ack that fires at once (1 ms; in real life a zygote still loading DAG files delays the
    task, not the claim): the worker claimed before it started the task, so the delivery is acked
    while the task runs and nothing is run twice."""
    env.vars["RABBITRUN__WORKER__ACK_RUNNING_AFTER_S"] = "0.001"
    env.scheduler()
    env.worker()
    run_id = trigger(env, "long_running", sleep_s=6)
    queue = Names(env.prefix).task_queue("default")
    wait_until(lambda: running_count(env, "long_running", run_id) == 1, 30, what="long task running")
    wait_until(lambda: queue_counts(vhost, queue) == (0, 0), 10, what="its delivery acked early")
    assert running_count(env, "long_running", run_id) == 1  # acked while it still runs
    assert wait(env, "long_running", run_id, timeout_s=60).state == "success", env.logs()
    assert len(lines(env, "long_task")) == 1
    assert attempts_of(env, run_id) == [("long_task", 1, "success")]


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_second_signal_is_a_cold_shutdown_and_the_task_reruns_elsewhere(env: Env, second: signal.Signals) -> None:
    env.vars["RABBITRUN__WORKER__SHUTDOWN_TIMEOUT_S"] = "60"
    env.scheduler()
    worker = env.worker()
    run_id = trigger(env, "long_running", sleep_s=12)  # outlives slow waits before the signal
    wait_until(lambda: running_count(env, "long_running", run_id) == 1, 30, what="long task running")
    worker.send_signal(signal.SIGTERM)
    wait_until(
        lambda: "warm shutdown" in worker.log_path.read_text(),
        10,  # type: ignore[attr-defined]
        what="warm shutdown begun",
    )
    started = time.monotonic()
    worker.send_signal(second)
    worker.wait(timeout=30)
    assert time.monotonic() - started < 4  # did not wait for the 5 s task, let alone the 60 s timeout
    assert "cold shutdown" in worker.log_path.read_text()  # type: ignore[attr-defined]
    assert not lines(env, "long_task")
    row = states(env, "long_running", run_id)["long_task"]
    assert (row.state, row.try_number) == ("queued", 1)  # went back to the queue, not failed
    second_worker(env)
    assert wait(env, "long_running", run_id, timeout_s=60).state == "success", env.logs()
    assert len(lines(env, "long_task")) == 1
    assert attempts_of(env, run_id) == [("long_task", 1, "success")]


def test_cold_shutdown_before_the_task_handles_signals_releases_the_attempt_not_fails_it(env: Env) -> None:
    """The race that once failed CI: the second signal reaches a task process that is RUNNING but has
    not installed its SIGTERM handler yet, so SIGTERM kills it outright. The worker stopped it for its
    own shutdown: the attempt goes back to queued (same try) and runs once elsewhere."""
    env.scheduler()
    worker = env.worker()
    run_id = trigger(env, "slow_to_prepare")
    wait_until(lambda: running_count(env, "slow_to_prepare", run_id) == 1, 30, what="task claimed")
    worker.send_signal(signal.SIGTERM)
    wait_until(lambda: "warm shutdown" in worker.log_path.read_text(), 10, what="warm shutdown begun")  # type: ignore[attr-defined]
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)
    row = states(env, "slow_to_prepare", run_id)["prepared"]
    assert (row.state, row.try_number) == ("queued", 1), row
    assert "released on worker shutdown" in (row.reason or "") and "SIGTERM" in (row.reason or "")
    second_worker(env)
    assert wait(env, "slow_to_prepare", run_id, timeout_s=60).state == "success", env.logs()
    assert len(lines(env, "prepared")) == 1
    assert attempts_of(env, run_id) == [("prepared", 1, "success")]


def test_soft_and_hard_time_limits_fail_the_attempt_with_the_reason(env: Env) -> None:
    env.vars["RABBITRUN__WORKER__KILL_GRACE_S"] = "1"
    env.scheduler()
    env.worker()
    run_id, final = run_dag(env, "timeouts", timeout_s=60)
    rows = states(env, "timeouts", run_id)
    assert final.state == "failed"
    assert rows["soft"].state == "failed" and "TaskTimeout" in (rows["soft"].reason or "")
    assert len(lines(env, "soft_cleanup")) == 1  # the task caught the soft limit and cleaned up
    assert rows["hard"].state == "failed" and "hard time limit" in (rows["hard"].reason or "")
    assert lines(env, "hard_started") and not lines(env, "hard_finished")
    log_dir = env.settings().logging.base_log_folder
    assert "hard time limit" in open(f"{log_dir}/timeouts/hard/{run_id}/1.log").read()
    assert "Timeout after" in open(f"{log_dir}/timeouts/soft/{run_id}/1.log").read()
    stats = worker_stats(env)
    assert (stats["busy"], stats["processes"]) == (0, [])  # both slots freed, no child left behind
    _, again = run_dag(env, "chain3")
    assert again.state == "success"


def test_timed_out_attempts_are_retried_after_the_retry_delay(env: Env) -> None:
    """Soft limit (TaskTimeout) and hard limit (SIGKILL, recorded by the worker) both make the attempt
    up_for_retry with the task's retry_delay; the next try then fails or succeeds on its own merits."""
    env.vars["RABBITRUN__WORKER__KILL_GRACE_S"] = "1"
    env.scheduler()
    env.worker()
    run_id = trigger(env, "timeouts_retry")

    def retrying(task_id: str) -> bool:
        row = states(env, "timeouts_retry", run_id).get(task_id)
        return row is not None and row.state == "up_for_retry"

    wait_until(lambda: retrying("hard_retry"), 30, what="hard-limit kill recorded as up_for_retry")
    hard = states(env, "timeouts_retry", run_id)["hard_retry"]
    assert "hard time limit" in (hard.reason or "")
    final = wait(env, "timeouts_retry", run_id, timeout_s=90)
    rows = states(env, "timeouts_retry", run_id)
    assert final.state == "failed"  # soft_retry overran both tries
    assert (rows["soft_retry"].state, rows["soft_retry"].try_number) == ("failed", 2)
    assert "TaskTimeout" in (rows["soft_retry"].reason or "")
    assert (rows["hard_retry"].state, rows["hard_retry"].try_number) == ("success", 2)
    assert attempts_of(env, run_id) == [
        ("hard_retry", 1, "up_for_retry"),
        ("hard_retry", 2, "success"),
        ("soft_retry", 1, "up_for_retry"),
        ("soft_retry", 2, "failed"),
    ]
    assert len(lines(env, "soft_retry")) == 2 and len(lines(env, "hard_retry")) == 2
    engine = make_engine(env.settings().database, pooled=False)
    with session_factory(engine)() as session:
        tries = {(a.task_id, a.try_number): a for a in session.query(TaskAttempt).filter_by(run_id=run_id)}
    for task_id in ("soft_retry", "hard_retry"):
        gap = (tries[(task_id, 2)].start_date - tries[(task_id, 1)].end_date).total_seconds()
        assert gap >= 2.9, (task_id, gap)  # retry_delay is 3 s: not retried at once


def test_task_process_killed_is_recorded_and_retried(env: Env) -> None:
    env.scheduler()
    env.worker()
    run_id, final = run_dag(env, "self_kill")
    assert final.state == "success", env.logs()
    row = states(env, "self_kill", run_id)["die_once"]
    assert (row.state, row.try_number) == ("success", 2)
    tries = attempts_of(env, run_id)
    assert tries[0][:2] == ("die_once", 1) and tries[0][2] == "up_for_retry"
    engine = make_engine(env.settings().database, pooled=False)
    with session_factory(engine)() as session:
        assert session.query(TaskInstance).filter_by(run_id=run_id, state="running").count() == 0
        reason = session.query(TaskAttempt).filter_by(run_id=run_id, try_number=1).one().reason
    assert "SIGKILL" in (reason or "")


def test_duplicate_envelope_runs_the_task_once(env: Env) -> None:
    """Publish the same envelope a second time by hand, and again after the task finished."""
    env.scheduler()
    env.worker()
    run_id, final = run_dag(env, "chain3")
    assert final.state == "success"
    engine = make_engine(env.settings().database, pooled=False)
    with session_factory(engine)() as session:
        ti = session.get(TaskInstance, ("chain3", "first", run_id, -1))
        envelope = protocol.TaskEnvelope(
            id=ti.envelope_id,
            key=TaskInstanceKey("chain3", "first", run_id, -1, 1),
            dag_file="fault_dags.py",
            queue="default",
        )
    names = Names(env.prefix)

    async def publish_twice() -> None:
        conn = await aio_pika.connect(env.vars["RABBITRUN__BROKER__URL"])
        async with conn:
            ch = await conn.channel()
            for _ in range(2):
                await ch.default_exchange.publish(
                    aio_pika.Message(protocol.encode_envelope(envelope)), routing_key=names.task_queue("default")
                )

    asyncio.run(publish_twice())
    worker_log = env.children[1].log_path  # type: ignore[attr-defined]
    wait_until(lambda: worker_log.read_text().count("not running again") >= 2, 20, what="duplicates acked")
    assert len(lines(env, "first")) == 1
    assert states(env, "chain3", run_id)["first"].try_number == 1


def test_two_copies_of_a_queued_envelope_raced_by_two_workers_run_once(env: Env) -> None:
    """Both copies are delivered at once, one to each worker (one slot each): the claim lets one run."""
    from rabbitrun import client
    from rabbitrun.models.base import utcnow
    from rabbitrun.scheduler import queueing

    env.vars["RABBITRUN__WORKER__CONCURRENCY"] = "1"
    first_worker = env.worker()  # the scheduler starts later: it would queue and publish the run itself
    env.vars["RABBITRUN__WORKER__HOSTNAME"] = f"w2-{env.prefix}@test"
    other_worker = env.worker()
    run_id = queue_run(env, "chain3", sleep_s=1)  # QUEUED in the DB, no message yet
    settings = env.settings()
    with session_factory(make_engine(settings.database, pooled=False))() as session:
        (envelope,) = queueing.queued_envelopes(session, client.dagbag(settings), utcnow())
    names = Names(env.prefix)
    props = protocol.envelope_properties(envelope, "", 10)  # no reply queue yet: the DB has the outcome

    async def publish_twice() -> None:
        conn = await aio_pika.connect(env.vars["RABBITRUN__BROKER__URL"])
        async with conn:
            ch = await conn.channel()
            for _ in range(2):
                await ch.default_exchange.publish(
                    aio_pika.Message(protocol.encode_envelope(envelope), **props),
                    routing_key=names.task_queue("default"),
                )

    asyncio.run(publish_twice())
    wait_until(lambda: states(env, "chain3", run_id)["first"].state == "success", 30, what="first ran")
    env.scheduler()  # finishes the run from the DB
    assert wait(env, "chain3", run_id, timeout_s=60).state == "success", env.logs()
    assert [len(lines(env, n)) for n in ("first", "second", "third")] == [1, 1, 1]
    assert attempts_of(env, run_id) == [("first", 1, "success"), ("second", 1, "success"), ("third", 1, "success")]
    logs = [w.log_path.read_text() for w in (first_worker, other_worker)]  # type: ignore[attr-defined]
    losers = [
        log for log in logs if any("chain3.first" in line and "not running again" in line for line in log.splitlines())
    ]
    assert len(losers) == 1, logs  # each worker got a copy; the one that lost the claim did not run it


def test_an_attempt_whose_lease_is_not_renewed_is_queued_again_as_the_same_try(env: Env) -> None:
    """A worker frozen by SIGSTOP keeps its AMQP connection open for a while but renews no lease."""
    env.scheduler()
    frozen = env.worker()
    run_id = trigger(env, "long_running", sleep_s=60)
    wait_until(lambda: running_count(env, "long_running", run_id) == 1, 30, what="long task running")
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        wait_until(
            lambda: states(env, "long_running", run_id)["long_task"].state in ("scheduled", "queued"),
            30,
            what="the lost attempt queued again by the scheduler",
        )
        row = states(env, "long_running", run_id)["long_task"]
        assert row.try_number == 1 and "lease expired" in (row.reason or ""), row
        assert infra_retries(env, "long_running", run_id) == {"long_task": 1}
    finally:
        os.kill(frozen.pid, signal.SIGCONT)


def max_overlap(rows: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in rows] + [(e, -1) for _, e in rows])
    best = current = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best


def test_autoscale_grows_with_the_backlog_and_shrinks_when_idle(env: Env) -> None:
    env.scheduler()
    worker = env.worker("--autoscale", "4,1")
    run_id, final = run_dag(env, "sleepers", timeout_s=90, sleep_s=1.5)
    assert final.state == "success", env.logs()
    rows = states(env, "sleepers", run_id).values()
    overlap = max_overlap([(r.start_date.timestamp(), r.end_date.timestamp()) for r in rows])
    assert 2 <= overlap <= 4  # grew past MIN, never past MAX
    log_path = worker.log_path  # type: ignore[attr-defined]
    assert "autoscale: 1 -> " in log_path.read_text()
    wait_until(lambda: " -> 1 task processes" in log_path.read_text(), 20, what="shrink back to MIN")
    # the broker's prefetch followed the pool: back at MIN it is MIN + 1 (the look-ahead that shows backlog)
    out = env.cli("inspect", "stats", "--json", "--timeout", "2")
    assert out.returncode == 0, out.stderr
    [stats] = [r["data"] for r in json.loads(out.stdout)]
    assert (stats["concurrency"], stats["prefetch"]) == (1, lookahead_prefetch(AutoscaleLimits(4, 1), 1)) == (1, 2)


def test_a_task_process_dies_with_its_zygote(env: Env) -> None:
    """If the zygote is killed (OOM killer, kill -9), its task processes must not run on unsupervised:
    their attempts would run elsewhere once their leases expire."""
    env.scheduler()
    worker = env.worker()
    run_id = trigger(env, "long_running", sleep_s=60)
    wait_until(lambda: running_count(env, "long_running", run_id) == 1, 30, what="long task running")
    stats = wait_until(lambda: worker_stats(env) if worker_stats(env)["processes"] else None, 20, what="its pid")
    (task_pid,), zygote_pid = stats["processes"], stats["zygote_pid"]
    assert zygote_pid not in (None, worker.pid) and _alive(task_pid)
    os.kill(zygote_pid, signal.SIGKILL)
    wait_until(lambda: not _alive(task_pid), 10, what="the task process gone with its zygote")
    assert not lines(env, "long_task")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie waiting to be reaped is gone as a task


_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def _first_logged(text: str, needle: str) -> datetime:
    """When the first line containing ``needle`` was logged."""
    line = next(line for line in text.splitlines() if needle in line)
    match = _LOG_TIME.match(line)
    assert match, line
    return datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("how", ["connections_closed", "packets_dropped"])
def test_a_worker_cut_off_from_the_db_kills_its_task_before_its_lease_expires(env: Env, how: str) -> None:
    """The worker's PostgreSQL connections go through a relay the test cuts (every connection
    closed, new ones refused) or stalls (a partition: nothing answers). The worker cannot renew
    its lease, so it kills its task before the lease expires; the scheduler (which still reaches
    the DB) runs the attempt again on another worker, as the same try. The task's side effect comes
    after a 15 s sleep, so a task left running on the cut-off worker would show as a second line."""
    direct = env.vars["RABBITRUN__DATABASE__URL"]
    scheduler = env.scheduler()
    with ThreadedRelay.running(("127.0.0.1", 5432)) as relay:
        env.vars["RABBITRUN__DATABASE__URL"] = direct.replace("@127.0.0.1:5432/", f"@127.0.0.1:{relay.port}/")
        cut_off = env.worker()
        env.vars["RABBITRUN__DATABASE__URL"] = direct
        run_id = trigger(env, "long_running", sleep_s=15)
        wait_until(lambda: running_count(env, "long_running", run_id) == 1, 30, what="long task running")
        (relay.cut if how == "connections_closed" else relay.stall)()
        env.vars["RABBITRUN__WORKER__HOSTNAME"] = f"w2-{env.prefix}@test"
        env.worker()
        final = wait(env, "long_running", run_id, timeout_s=120)
        assert final.state == "success", env.logs()
        worker_log = cut_off.log_path.read_text()  # type: ignore[attr-defined]
        assert "self-fencing: killed 1 task process(es)" in worker_log, worker_log
        fenced_at = _first_logged(worker_log, "self-fencing")
        expired_at = _first_logged(scheduler.log_path.read_text(), "lease expired")  # type: ignore[attr-defined]
        assert fenced_at < expired_at, (fenced_at, expired_at)
        relay.restore()
        # the cut-off worker comes back: its released delivery finds the attempt decided elsewhere
        _, after = run_dag(env, "chain3", timeout_s=90)
        assert after.state == "success", env.logs()
        assert cut_off.poll() is None, worker_log
    effects = lines(env, "long_task")
    assert len(effects) == 1 and "try=1" in effects[0], effects  # ran to its end once, as its first try
    assert attempts_of(env, run_id) == [("long_task", 1, "success")]
    assert infra_retries(env, "long_running", run_id) == {"long_task": 1}
