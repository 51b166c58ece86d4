"""What a running task sees, through real scheduler and worker processes (the forked task process
gets its run over the task channel): context names, conf as a dict, template files, macros,
get_current_context, pre/post_execute, do_xcom_push and multiple_outputs; SQLite and PostgreSQL."""

from __future__ import annotations

import json

from tests.support.env import Env
from tests.support.runs import run_dag
from tests.support.secrets import xcoms


def test_runtime_context_dag_runs_on_a_worker_with_airflows_names_and_templates(env: Env) -> None:
    env.scheduler()
    env.worker()
    run_id, final = run_dag(env, "runtime_context", who="wendy")
    assert final.state == "success", env.logs()
    rows = xcoms(env, run_id)
    names = json.loads(rows[("names", "return_value")].value)
    assert names["conf_who"] == "wendy" and names["same_context"] is True and names["logical_type"] == "pendulum"
    assert names["dags_folder"] == env.vars["RABBITRUN__CORE__DAGS_FOLDER"]
    day = names["prev_ds_nodash"]
    assert json.loads(rows[("from_file", "return_value")].value) == f"file:{day}:wendy:{names['tomorrow_ds']}"
    assert json.loads(rows[("macros", "return_value")].value) == "BLUE-wendy"
    assert not any(task_id == "no_push" for task_id, _ in rows)
    assert json.loads(rows[("split", "b")].value) == "two"
    assert json.loads(rows[("hooked", "post")].value) == "after:body"
    assert json.loads(rows[("current", "return_value")].value) == f"runtime_context__current__{day}"
