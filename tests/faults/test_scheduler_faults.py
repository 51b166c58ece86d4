"""Faults around the scheduler: restarted while tasks are queued and running, and a crash between
marking tasks QUEUED and the broker's confirm. Real processes, real broker, real DB."""

from __future__ import annotations

import signal

from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.tables import TaskAttempt
from rabbitrun.names import Names
from tests.conftest import Env, wait_until
from tests.helpers import lines, queue_counts, queue_run, states, trigger, wait


def attempt_rows(env: Env, run_id: str) -> list[tuple[str, int, str]]:
    engine = make_engine(env.settings().database, pooled=False)
    with session_factory(engine)() as session:
        return sorted((a.task_id, a.try_number, a.state) for a in session.query(TaskAttempt).filter_by(run_id=run_id))


def test_scheduler_killed_with_tasks_queued_and_running_is_adopted_without_requeueing_running(
    env: Env, vhost: str
) -> None:
    scheduler = env.scheduler()
    env.worker()  # two slots: two naps run, eight wait in the queue
    run_id = trigger(env, "sleepers", sleep_s=2)

    def queued_and_running() -> bool:
        counts = [r.state for r in states(env, "sleepers", run_id).values()]
        return counts.count("running") == 2 and counts.count("queued") == 8

    wait_until(queued_and_running, 30, what="two tasks running and eight queued")
    scheduler.send_signal(signal.SIGKILL)
    scheduler.wait()
    replies = Names(env.prefix).reply_queue(f"sched-{env.prefix}")
    # results of the tasks finishing meanwhile wait for the scheduler in its durable reply queue
    wait_until(lambda: queue_counts(vhost, replies)[0] >= 2, 30, what="results waiting in the reply queue")
    assert scheduler.poll() is not None
    env.scheduler()
    final = wait(env, "sleepers", run_id, timeout_s=120)
    assert final.state == "success", env.logs()
    assert queue_counts(vhost, replies) == (0, 0)  # every waiting result was consumed
    assert [len(lines(env, f"nap{i}")) for i in range(10)] == [1] * 10
    # one attempt per task, try 1: nothing running or queued was run again or given a new try
    assert attempt_rows(env, run_id) == sorted((f"nap{i}", 1, "success") for i in range(10))


def test_tasks_marked_queued_by_a_scheduler_that_died_before_publishing_still_run(env: Env) -> None:
    """queue_run commits QUEUED task instances with envelope ids and publishes nothing: exactly what a
    scheduler leaves when it dies between its commit and the broker's confirm."""
    run_id = queue_run(env, "chain3")
    assert states(env, "chain3", run_id)["first"].state == "queued"
    scheduler = env.scheduler()
    env.worker()
    final = wait(env, "chain3", run_id, timeout_s=60)
    assert final.state == "success", env.logs()
    assert [len(lines(env, n)) for n in ("first", "second", "third")] == [1, 1, 1]
    assert attempt_rows(env, run_id) == [("first", 1, "success"), ("second", 1, "success"), ("third", 1, "success")]
    assert "adopted 1 queued task instance(s)" in scheduler.log_path.read_text()  # type: ignore[attr-defined]
