"""A DAG built with @dag, TaskGroup, chain, Label, EmptyOperator, Param and .output runs end to end
(`dags test`, real DB: SQLite and PostgreSQL)."""

from __future__ import annotations

import json

from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.tables import XComRow
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


def test_a_conf_that_violates_a_param_fails_the_run_before_its_tasks_use_it(env: Env) -> None:
    _, rows = run_dag_in_process(env.settings(), "graph_features", conf={"label": ""})
    states = {r.task_id: r.state for r in rows}
    assert states["start"] == "failed", rows
    assert states["end"] != "success"


def test_with_block_without_as_registers_its_dag(env: Env) -> None:
    _, rows = run_dag_in_process(env.settings(), "graph_unnamed")
    assert [(r.task_id, r.state) for r in rows] == [("only", "success")]
