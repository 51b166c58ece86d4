"""A DAG built with @dag, TaskGroup, chain, Label, EmptyOperator, Param and .output runs end to end
(`dags test`, real DB: SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pytest

from rabbitrun.errors import EXIT_USAGE, ParamValidationError
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.tables import DagRun, XComRow
from rabbitrun.scheduler.inprocess import run_dag_in_process
from tests.support.env import Env


def _xcom(env: Env, run_id: str, task_id: str) -> object:
    with session_factory(make_engine(env.settings().database, pooled=False))() as session:
        return json.loads(session.query(XComRow).filter_by(run_id=run_id, task_id=task_id).one().value)


def test_group_chain_label_and_empty_tasks_run_in_graph_order_with_params_from_conf(env: Env) -> None:
    run_id, rows = run_dag_in_process(env.settings(), "graph_features", conf={"factor": 5})
    states = {r.task_id: r.state for r in rows}
    assert states == {
        "start": "success",
        "work.scaled": "success",
        "work.echo": "success",
        "work.inner.noop": "success",
        "check": "success",
        "end": "success",
    }
    assert _xcom(env, run_id, "work.echo") == "10-x"  # str(XComArg) in an f-string, params.label's default
    assert _xcom(env, run_id, "check") == "10-x"  # echo.output passed to a task


def test_a_conf_that_violates_a_param_is_refused_before_a_run_exists(env: Env) -> None:
    with pytest.raises(ParamValidationError, match="param 'label' is invalid"):
        run_dag_in_process(env.settings(), "graph_features", conf={"label": ""})
    refused = env.cli("dags", "trigger", "graph_features", "--conf", '{"label": ""}')
    assert refused.returncode == EXIT_USAGE, refused.stderr
    assert "param 'label' is invalid: '' should be non-empty" in refused.stderr
    with session_factory(make_engine(env.settings().database, pooled=False))() as session:
        assert session.query(DagRun).filter_by(dag_id="graph_features").count() == 0
    accepted = env.cli("dags", "trigger", "graph_features", "--conf", '{"label": "ok"}')
    assert accepted.returncode == 0, accepted.stderr


def test_with_block_without_as_registers_its_dag(env: Env) -> None:
    _, rows = run_dag_in_process(env.settings(), "graph_unnamed")
    assert [(r.task_id, r.state) for r in rows] == [("only", "success")]


def test_a_run_past_its_dagrun_timeout_fails_with_its_unfinished_tasks(env: Env) -> None:
    from datetime import UTC, datetime, timedelta

    from rabbitrun.client.dags import dagbag
    from rabbitrun.models import runs as run_rows
    from rabbitrun.models.tables import TaskInstance
    from rabbitrun.scheduler.runs import fail_timed_out_runs, start_queued_runs

    settings = env.settings()
    bag = dagbag(settings)
    sessions = session_factory(make_engine(settings.database, pooled=False))
    started = datetime(2026, 1, 1, tzinfo=UTC)
    with sessions() as session:
        run_rows.create_run(session, "graph_timeout", "r1", {}, started)
        session.commit()
        start_queued_runs(session, bag, settings, started)
        session.commit()
        assert fail_timed_out_runs(session, bag, started + timedelta(seconds=59)) == []  # not yet
        done = fail_timed_out_runs(session, bag, started + timedelta(seconds=61))
    assert [(f.run_id, f.state) for f in done] == [("r1", "failed")]
    with sessions() as session:
        run = session.query(DagRun).filter_by(dag_id="graph_timeout", run_id="r1").one()
        states = {t.task_id: t.state for t in session.query(TaskInstance).filter_by(dag_id="graph_timeout")}
    assert run.state == "failed"
    assert states == {"first": "skipped", "second": "skipped"}  # none was running: the unfinished are skipped
