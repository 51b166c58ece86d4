"""Real scheduler and worker: downstream tasks are queued on the upstream's result, not on the poll
interval (DESIGN rule 5); secrets are masked in the log of a worker's forked task process too."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.tables import DagRun, TaskInstance
from tests.support.env import Env
from tests.support.runs import run_dag, trigger
from tests.support.secrets import log_file
from tests.support.services import wait_until


def test_downstream_is_queued_within_a_second_of_the_upstream_end_despite_a_5s_poll(env: Env) -> None:
    env.vars["RABBITRUN__SCHEDULER__POLL_INTERVAL_S"] = "5"
    env.scheduler()
    env.worker()
    run_id, final = run_dag(env, "chain3")
    assert final.state == "success"
    with session_factory(make_engine(env.settings().database, pooled=False))() as session:
        tis = {
            t.task_id: t
            for t in session.execute(
                select(TaskInstance).where(TaskInstance.dag_id == "chain3", TaskInstance.run_id == run_id)
            ).scalars()
        }
    for upstream, downstream in (("first", "second"), ("second", "third")):
        gap = tis[downstream].queued_at - tis[upstream].end_date
        assert timedelta(0) <= gap < timedelta(seconds=1), (upstream, downstream, gap)


def test_a_triggered_run_starts_at_once_despite_a_60s_new_run_poll(env: Env) -> None:
    """`dags trigger` nudges the scheduler (NOTIFY on PostgreSQL, its wake-up socket on SQLite):
    the run starts without waiting for the new-run poll or the full pass."""
    env.vars["RABBITRUN__SCHEDULER__POLL_INTERVAL_S"] = "60"
    env.vars["RABBITRUN__SCHEDULER__NEW_RUN_CHECK_S"] = "60"
    env.scheduler()
    time.sleep(2)  # the start-up pass is over: from here only a nudge (or 60 s) starts a new run
    run_id = trigger(env, "chain3")
    sessions = session_factory(make_engine(env.settings().database, pooled=False))

    def started() -> bool:
        with sessions() as session:
            return session.execute(select(DagRun.state).where(DagRun.run_id == run_id)).scalar_one() != "queued"

    wait_until(started, 15, what="the triggered run to start")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_secrets_are_masked_in_the_log_of_a_workers_forked_task_process(env: Env) -> None:
    env.vars["RABBITRUN__CORE__SENSITIVE_VAR_CONN_NAMES"] = "token,password"
    assert env.cli("variables", "set", "team_token", "tok-f0rked").returncode == 0
    assert env.cli("variables", "set", "color", "blue").returncode == 0
    env.scheduler()
    env.worker()
    run_id, final = run_dag(env, "ops_context")
    assert final.state == "failed"  # returns_complex: no pickling here; the other two succeed
    text = log_file(env, "ops_context", "leak_custom", run_id).read_text()
    assert "tok-f0rked" not in text
    assert "stdout token ***" in text and "stderr token ***" in text and "logged token ***" in text
    shown = env.cli("tasks", "logs", "ops_context", "leak_custom", run_id)
    assert shown.returncode == 0 and "stderr token ***" in shown.stdout and "tok-f0rked" not in shown.stdout
