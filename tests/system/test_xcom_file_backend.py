"""The file-backed XCom backend end to end: scheduler -> RabbitMQ -> worker -> forked task,
a large value written to a file by one task and read back by the next."""

from __future__ import annotations

import json
from pathlib import Path

from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.tables import XComRow
from tests.support.env import Env
from tests.support.runs import run_dag


def test_large_xcom_travels_through_a_file_between_worker_tasks(env: Env) -> None:
    env.vars["RABBITRUN__CORE__XCOM_BACKEND"] = "rabbitrun.models.xcom_backends.FileXComBackend"
    env.scheduler()
    env.worker()
    run_id, final = run_dag(env, "xcom_file_dag")
    assert final.state == "success", env.logs()
    with session_factory(make_engine(env.settings().database, pooled=False))() as session:
        rows = {r.task_id: r for r in session.query(XComRow).filter_by(run_id=run_id)}
    assert rows["produce_big"].value_type == "ref"
    assert Path(json.loads(rows["produce_big"].value)["path"]).is_file()
    assert json.loads(rows["consume_big"].value) == {"length": 20000, "when_type": "datetime"}
