"""Faults around the scheduler: restarted while tasks are queued and running, and a crash between
marking tasks QUEUED and the broker's confirm. Real processes, real broker, real DB."""

from __future__ import annotations

import signal
import time

import pytest

from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.tables import TaskAttempt
from rabbitrun.names import Names
from tests.support.env import Env
from tests.support.relay import ThreadedRelay
from tests.support.runs import lines, queue_counts, queue_run, states, trigger, wait
from tests.support.services import wait_until


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


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_metadata_db_outage_pauses_the_scheduler_which_resumes_without_losing_or_doubling(env: Env) -> None:
    """The scheduler's connections to PostgreSQL go through a relay the test cuts for a while
    (the worker's do not): a result that arrives meanwhile and a run triggered meanwhile are both
    taken up once the database is back, the scheduler never exits, nothing runs twice."""
    direct = env.vars["RABBITRUN__DATABASE__URL"]
    with ThreadedRelay.running(("127.0.0.1", 5432)) as relay:
        env.vars["RABBITRUN__DATABASE__URL"] = direct.replace("@127.0.0.1:5432/", f"@127.0.0.1:{relay.port}/")
        scheduler = env.scheduler()
        env.vars["RABBITRUN__DATABASE__URL"] = direct
        env.worker()
        run_a = trigger(env, "chain3", sleep_s=3)
        wait_until(
            lambda: getattr(states(env, "chain3", run_a).get("first"), "state", None) == "running",
            30,
            what="first running",
        )
        relay.cut()
        log_path = scheduler.log_path  # type: ignore[attr-defined]
        wait_until(lambda: "scheduling paused" in log_path.read_text(), 30, what="the outage in the scheduler log")
        run_b = trigger(env, "chain3")  # written straight to the DB, which is up for everyone else
        wait_until(
            lambda: states(env, "chain3", run_a)["first"].state == "success",
            30,
            what="first finished during the outage",
        )
        time.sleep(2)
        assert scheduler.poll() is None, log_path.read_text()
        assert states(env, "chain3", run_a)["second"].state == "none"  # nobody could queue it meanwhile
        relay.restore()
        assert wait(env, "chain3", run_a, timeout_s=90).state == "success"
        assert wait(env, "chain3", run_b, timeout_s=90).state == "success"
        assert scheduler.poll() is None
        text = log_path.read_text()
        assert "cannot use the metadata database at postgresql+psycopg://" in text and "Traceback" not in text
        assert "metadata database reachable again" in text
    for run_id in (run_a, run_b):
        assert attempt_rows(env, run_id) == [("first", 1, "success"), ("second", 1, "success"), ("third", 1, "success")]
    for name in ("first", "second", "third"):
        assert len(lines(env, name)) == 2  # once per run: nothing lost, nothing doubled
