"""Run management without a broker: pause/unpause, clear (+downstream) re-runs with a new try and
replaced XComs, dags delete, and `dags test` running a whole DAG in one process."""

from __future__ import annotations

import json

from rabbitrun import client
from rabbitrun.models.base import utcnow
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.tables import XComRow
from rabbitrun.scheduler import readiness, runs
from rabbitrun.scheduler.inprocess import run_dag_in_process
from tests.support.env import Env
from tests.support.runs import lines, states


def test_dags_test_runs_a_whole_dag_in_process_with_retries(env: Env) -> None:
    out = env.cli("dags", "test", "flaky", "--conf", json.dumps({"out_dir": str(env.home.parent / "out")}))
    assert out.returncode == 0, out.stderr
    assert "fail_twice" in out.stdout and "try=3" in out.stdout and ": success" in out.stdout
    assert len(lines(env, "fail_twice")) == 3
    bad = env.cli("dags", "test", "failing", "--conf", json.dumps({"out_dir": str(env.home.parent / "out")}))
    assert bad.returncode == 1 and "upstream_failed" in bad.stdout


def test_clear_with_downstream_reruns_with_new_tries_and_replaces_xcoms(env: Env) -> None:
    settings = env.settings()
    run_id, rows = run_dag_in_process(settings, "xcom_flow", conf={"out_dir": str(env.home.parent / "out")})
    assert all(r.state == "success" for r in rows)
    cleared = client.clear_tasks(settings, "xcom_flow", task_regex="^produce$", downstream=True, run_id=run_id)
    assert {t for _, t in cleared} == {"produce", "consume", "echo"}
    assert states(env, "xcom_flow", run_id)["produce"].state == "none"
    assert states(env, "xcom_flow", run_id)["other"].state == "success"
    bag = client.dagbag(settings)
    sessions = session_factory(make_engine(settings.database, pooled=False))
    from rabbitrun.runner import inprocess

    while True:
        with sessions() as session:
            envelopes = readiness.schedule(session, bag, settings, utcnow(), only=[("xcom_flow", run_id)])
        if not envelopes:
            break
        for e in envelopes:
            inprocess.run_attempt(settings, sessions, bag, e.key, hostname="t", in_process=True)
    after = states(env, "xcom_flow", run_id)
    assert (after["produce"].try_number, after["echo"].try_number, after["other"].try_number) == (2, 2, 1)
    with sessions() as session:
        produced = session.query(XComRow).filter_by(run_id=run_id, task_id="produce").all()
    assert sorted(x.key for x in produced) == ["extra", "return_value"]  # replaced, not appended
    assert client.run_progress(settings, "xcom_flow", run_id).state == "success"


def test_paused_dag_keeps_its_run_queued_until_unpaused_and_delete_removes_it(env: Env) -> None:
    settings = env.settings()
    assert env.cli("dags", "pause", "simple").returncode == 0
    run_id = client.trigger(settings, "simple", conf={"out_dir": str(env.home.parent / "out")})
    bag = client.dagbag(settings)
    sessions = session_factory(make_engine(settings.database, pooled=False))
    with sessions() as session:
        assert runs.start_queued_runs(session, bag, settings, utcnow()) == []
        assert not runs.queued_runs_exist(session)
    assert env.cli("dags", "unpause", "simple").returncode == 0
    with sessions() as session:
        assert runs.queued_runs_exist(session)
        assert [r.run_id for r in runs.start_queued_runs(session, bag, settings, utcnow())] == [run_id]
    assert env.cli("dags", "delete", "simple", "--yes").returncode == 0
    assert env.cli("tasks", "states", "simple", run_id).returncode == 2
    assert env.cli("dags", "pause", "nope").returncode == 2
