"""One attempt through the runner (the worker child's code path, in-process): the Airflow context
keys, the XCom pickling switch end to end, masking with configured sensitive names and stderr."""

from __future__ import annotations

import json
import pickle

from tests.support.env import Env
from tests.support.runs import queue_run, states
from tests.support.secrets import log_file, run_in_process, xcoms


def test_context_has_task_instance_dag_dag_run_and_logical_date(env: Env) -> None:
    run_id = queue_run(env, "ops_context")
    assert run_in_process(env, "ops_context", run_id, "context_keys").state == "success"
    value = json.loads(xcoms(env, run_id)[("context_keys", "return_value")].value)
    assert value["same_ti"] is True and value["dag_id"] == "ops_context"
    assert value["dag_run"] == ["ops_context", run_id] and value["run_id"] == run_id
    assert value["logical_date"].endswith("+00:00") and value["ds"] == value["logical_date"][:10]


def test_non_json_return_value_fails_unless_pickling_is_enabled(env: Env) -> None:
    run_id = queue_run(env, "ops_context")
    refused = run_in_process(env, "ops_context", run_id, "returns_complex")
    assert refused.state == "failed" and "pickl" in (refused.error or "").lower(), refused.error
    assert ("returns_complex", "return_value") not in xcoms(env, run_id)
    assert "pickl" in (states(env, "ops_context", run_id)["returns_complex"].reason or "").lower()
    env.vars["RABBITRUN__CORE__ENABLE_XCOM_PICKLING"] = "true"
    allowed = run_in_process(env, "ops_context", run_id, "returns_complex", try_number=None)  # a new try
    assert allowed.state == "success", allowed.error
    row = xcoms(env, run_id)[("returns_complex", "return_value")]
    assert "pickle" in row.value_type and pickle.loads(row.value) == complex(1, 2)


def test_configured_sensitive_names_mask_variables_printed_to_stderr_and_logged(env: Env) -> None:
    env.vars["RABBITRUN__CORE__SENSITIVE_VAR_CONN_NAMES"] = "token,password"
    assert env.cli("variables", "set", "team_token", "tok-3x4mple").returncode == 0
    assert env.cli("variables", "set", "color", "blue").returncode == 0
    run_id = queue_run(env, "ops_context")
    assert run_in_process(env, "ops_context", run_id, "leak_custom").state == "success"
    text = log_file(env, "ops_context", "leak_custom", run_id).read_text()
    assert "tok-3x4mple" not in text
    assert "stdout token ***" in text and "stderr token ***" in text and "logged token ***" in text
    assert "plain blue" in text  # "color" matches none of the configured names
    listing = env.cli("variables", "list")
    assert listing.returncode == 0 and "tok-3x4mple" not in listing.stdout
