"""Mark success/failed by hand: task instances and runs, the scheduler carrying on from the mark,
and a running attempt whose final compare-and-set loses to the mark."""

from __future__ import annotations

from rabbitrun import client
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models import attempts
from rabbitrun.models.base import utcnow
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.runner import inprocess
from rabbitrun.scheduler import readiness
from rabbitrun.scheduler.inprocess import run_dag_in_process
from rabbitrun.states import TaskState
from tests.support.env import Env
from tests.support.runs import queue_run, states


def _run_state(env: Env, dag_id: str, run_id: str) -> str:
    return client.run_progress(env.settings(), dag_id, run_id).state


def _drive(env: Env, dag_id: str, run_id: str) -> None:
    """What scheduler and worker would do, in this process: queue what is ready and run it."""
    settings = env.settings()
    bag = client.dagbag(settings)
    sessions = session_factory(make_engine(settings.database, pooled=False))
    while True:
        with sessions() as session:
            envelopes = readiness.schedule(session, bag, settings, utcnow(), only=[(dag_id, run_id)])
        if not envelopes:
            return
        for envelope in envelopes:
            inprocess.run_attempt(settings, sessions, bag, envelope.key, hostname="t", in_process=True)


def test_marking_a_failed_task_success_resumes_its_downstream_and_the_run(env: Env) -> None:
    settings = env.settings()
    run_id, _ = run_dag_in_process(settings, "failing", conf={"out_dir": str(env.home.parent / "out")})
    assert _run_state(env, "failing", run_id) == "failed"
    assert states(env, "failing", run_id)["after_boom"].state == "upstream_failed"
    marked = client.set_task_state(settings, "failing", "boom", run_id, "success")
    assert (marked.previous, marked.reset_downstream, marked.run_reopened) == ("failed", ["after_boom"], True)
    rows = states(env, "failing", run_id)
    assert rows["boom"].state == "success" and "marked success" in (rows["boom"].reason or "")
    assert rows["after_boom"].state == "none" and rows["cleanup"].state == "success"
    assert _run_state(env, "failing", run_id) == "running"
    _drive(env, "failing", run_id)
    assert states(env, "failing", run_id)["after_boom"].state == "success"
    assert _run_state(env, "failing", run_id) == "success"


def test_running_attempt_marked_failed_loses_its_finish_and_the_mark_stands(env: Env) -> None:
    settings = env.settings()
    run_id = queue_run(env, "simple")
    key = TaskInstanceKey("simple", "one", run_id, -1, 1)
    sessions = session_factory(make_engine(settings.database, pooled=False))
    started = utcnow()
    with sessions() as session:
        assert attempts.claim(session, key, hostname="t", pid=1, now=started, envelope_id="e1").won
    client.set_task_state(settings, "simple", "one", run_id, "failed")
    with sessions() as session:
        done = attempts.Finish(TaskState.SUCCESS, utcnow())
        assert not attempts.finish(session, key, done, started_at=started, envelope_id="e1")
    row = states(env, "simple", run_id)["one"]
    assert (row.state, row.try_number) == ("failed", 1) and "marked failed" in (row.reason or "")
    with sessions() as session:
        readiness.schedule(session, client.dagbag(settings), settings, utcnow())
    assert _run_state(env, "simple", run_id) == "failed"


def test_queued_attempt_marked_success_is_not_claimed_by_its_delivery(env: Env) -> None:
    settings = env.settings()
    run_id = queue_run(env, "simple")
    client.set_task_state(settings, "simple", "one", run_id, "success")
    outcome = client.run_task(settings, "simple", "one", run_id, try_number=1, hostname="t")
    assert (outcome.state, outcome.claimed) == ("not_claimed", False)
    assert states(env, "simple", run_id)["one"].state == "success"


def test_marking_a_run_failed_fails_running_tasks_and_skips_unfinished_ones_then_success_marks_all(env: Env) -> None:
    settings = env.settings()
    run_id = queue_run(env, "xcom_flow")  # produce and other queued, consume and echo not yet
    sessions = session_factory(make_engine(settings.database, pooled=False))
    with sessions() as session:
        assert attempts.claim(
            session, TaskInstanceKey("xcom_flow", "produce", run_id, -1, 1), hostname="t", pid=1, now=utcnow()
        ).won
    assert client.set_run_state(settings, "xcom_flow", run_id, "failed").previous == "running"
    assert {t: r.state for t, r in states(env, "xcom_flow", run_id).items()} == {
        "produce": "failed",
        "other": "skipped",
        "consume": "skipped",
        "echo": "skipped",
    }
    assert _run_state(env, "xcom_flow", run_id) == "failed"
    client.set_run_state(settings, "xcom_flow", run_id, "success")
    assert {r.state for r in states(env, "xcom_flow", run_id).values()} == {"success"}
    assert _run_state(env, "xcom_flow", run_id) == "success"


def test_set_state_cli_marks_a_task_and_a_run_and_refuses_other_states(env: Env) -> None:
    run_id = queue_run(env, "simple")
    task = env.cli("tasks", "set-state", "simple", "one", run_id, "success")
    assert task.returncode == 0, task.stderr
    assert "queued -> success" in task.stdout
    run = env.cli("dags", "set-state", "simple", run_id, "failed")
    assert run.returncode == 0, run.stderr
    assert f"simple run={run_id}: running -> failed" in run.stdout
    assert _run_state(env, "simple", run_id) == "failed"
    bad = env.cli("tasks", "set-state", "simple", "one", run_id, "running")
    assert bad.returncode != 0 and "running" in bad.stderr
