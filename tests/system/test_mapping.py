"""Dynamic task mapping through real processes (scheduler -> RabbitMQ -> worker -> forked task),
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.tables import XComRow
from tests.support.env import Env
from tests.support.runs import run_dag


@pytest.fixture
def running(env: Env) -> Env:
    env.scheduler()
    env.worker()
    return env


def test_mapping_over_an_upstream_list_of_50_runs_50_instances_and_downstream_gets_results_in_order(
    running: Env,
) -> None:
    from rabbitrun import client

    run_id, final = run_dag(running, "map_fifty", timeout_s=120)
    assert final.state == "success", running.logs()
    rows = client.task_states(running.settings(), "map_fifty", run_id)
    squares = sorted((r.map_index, r.state, r.try_number) for r in rows if r.task_id == "square")
    assert squares == [(i, "success", 1) for i in range(50)]
    with session_factory(make_engine(running.settings().database, pooled=False))() as session:
        collected = session.query(XComRow).filter_by(run_id=run_id, task_id="collect", key="return_value").one()
    assert json.loads(collected.value) == {"values": [i * i for i in range(50)], "count": 50}
    ran = sorted(
        tuple(map(int, line.split()))
        for line in (running.home.parent / "out" / "square.lines").read_text().splitlines()
    )
    assert ran == [(i, i) for i in range(50)]  # each instance ran once, with its own element
    logs = Path(running.settings().logging.base_log_folder) / "map_fifty" / "square" / run_id
    assert sorted(int(p.parent.name.split("=")[1]) for p in logs.glob("map_index=*/1.log")) == list(range(50))


def test_non_list_upstream_fails_the_mapped_task_and_the_run(running: Env) -> None:
    from rabbitrun import client

    run_id, final = run_dag(running, "map_not_list")
    assert final.state == "failed", running.logs()
    rows = {(r.task_id, r.map_index): r for r in client.task_states(running.settings(), "map_not_list", run_id)}
    assert rows[("square", -1)].state == "failed" and "not a list" in (rows[("square", -1)].reason or "")
    assert rows[("collect", -1)].state == "upstream_failed"
