"""A DAG built with @dag, TaskGroup, chain, Label, EmptyOperator and Param runs through real
processes (scheduler -> RabbitMQ -> worker -> task process), on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.tables import XComRow
from tests.support.env import Env
from tests.support.runs import run_dag, states


def test_graph_features_dag_runs_to_success_through_scheduler_and_worker(env: Env) -> None:
    env.scheduler()
    env.worker()
    run_id, final = run_dag(env, "graph_features", timeout_s=120, factor=4, label="sys")
    assert final.state == "success", env.logs()
    assert {t: r.state for t, r in states(env, "graph_features", run_id).items()} == {
        "start": "success",
        "work.scaled": "success",
        "work.echo": "success",
        "work.inner.noop": "success",
        "check": "success",
        "end": "success",
    }
    with session_factory(make_engine(env.settings().database, pooled=False))() as session:
        checked = session.query(XComRow).filter_by(run_id=run_id, task_id="check", key="return_value").one()
    assert json.loads(checked.value) == "8-sys"
