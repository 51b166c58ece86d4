"""What a running task sees (issue 16): Airflow's context names, dag_run.conf as a dict, the
configuration object, macros, get_current_context, template files and native rendering, and the
XCom rules around execute (do_xcom_push, multiple_outputs, pre/post_execute); real runner, both DBs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rabbitrun import get_current_context
from rabbitrun.authoring.current import NoCurrentContext
from tests.support.env import Env
from tests.support.runs import queue_run, schedule_again
from tests.support.secrets import run_in_process, xcoms


def _value(env: Env, run_id: str, task_id: str, key: str = "return_value") -> object:
    return json.loads(xcoms(env, run_id)[(task_id, key)].value)


def test_context_has_airflows_date_names_conf_dict_config_and_macros(env: Env) -> None:
    run_id = queue_run(env, "runtime_context", who="zed")
    outcome = run_in_process(env, "runtime_context", run_id, "names")
    assert outcome.state == "success", outcome.error
    got = _value(env, run_id, "names")
    assert isinstance(got, dict)
    ds = str(got["yesterday_ds"])
    assert got["conf_who"] == "zed"
    assert got["dags_folder"] == env.vars["RABBITRUN__CORE__DAGS_FOLDER"]
    assert got["same_context"] is True and got["logical_type"] == "pendulum"
    assert got["macro"] == ds  # macros.ds_add(ds, -1) is yesterday
    assert got["prev_ds"] == got["next_ds"]  # a manual run: both are its own date, as in Airflow
    assert got["ts_nodash"][:8] == got["prev_ds_nodash"] and "T" in got["ts_nodash"]
    assert got["ts_nodash_with_tz"].endswith("+0000")
    assert got["task_instance_key_str"] == f"runtime_context__names__{got['prev_ds_nodash']}"
    assert got["tomorrow_ds_nodash"] > got["prev_ds_nodash"] > got["yesterday_ds_nodash"]
    assert got["test_mode"] is False and got["expanded_ti_count"] is None and got["prev_start_date_success"] is None


def test_template_file_macros_filters_and_conf_in_templates(env: Env) -> None:
    run_id = queue_run(env, "runtime_context", who="zed")
    for task_id in ("from_file", "macros", "names"):
        outcome = run_in_process(env, "runtime_context", run_id, task_id)
        assert outcome.state == "success", outcome.error
    names = _value(env, run_id, "names")
    assert isinstance(names, dict)
    today = str(names["prev_ds_nodash"])
    assert _value(env, run_id, "from_file") == f"file:{today}:zed:{names['tomorrow_ds']}"
    assert _value(env, run_id, "macros") == "BLUE-zed"  # dag_run.conf overrides params, as in Airflow


def test_do_xcom_push_multiple_outputs_and_execute_hooks(env: Env) -> None:
    run_id = queue_run(env, "runtime_context")
    for task_id in ("no_push", "split", "hooked", "current"):
        outcome = run_in_process(env, "runtime_context", run_id, task_id)
        assert outcome.state == "success", outcome.error
    rows = xcoms(env, run_id)
    assert not any(task_id == "no_push" for task_id, _ in rows)
    assert _value(env, run_id, "split", "a") == 1 and _value(env, run_id, "split", "b") == "two"
    assert _value(env, run_id, "split") == {"a": 1, "b": "two"}
    assert _value(env, run_id, "hooked", "pre") == "before"
    assert _value(env, run_id, "hooked", "post") == "after:body"
    assert str(_value(env, run_id, "current")).startswith("runtime_context__current__")


def test_native_rendering_gives_python_objects(env: Env) -> None:
    run_id = queue_run(env, "runtime_native")
    outcome = run_in_process(env, "runtime_native", run_id, "native")
    assert outcome.state == "success", outcome.error
    assert _value(env, run_id, "native") == "list"


def test_get_current_context_outside_a_task_is_a_clear_error() -> None:
    with pytest.raises(NoCurrentContext, match="no context was found"):
        get_current_context()


def test_standard_sensors_task_sensor_and_task_bash(env: Env) -> None:
    run_id = queue_run(env, "runtime_sensors", ready="yes")
    expected = {
        "py_ready": "success",
        "bash_ready": "success",
        "bash_fails": "failed",  # exit 3 is not the retry code 1: a failure, not "not yet"
        "delta_past": "success",
        "far_future": "up_for_reschedule",
        "any_day": "success",
        "decorated_sensor": "success",
    }
    got = {task_id: run_in_process(env, "runtime_sensors", run_id, task_id).state for task_id in expected}
    assert got == expected
    assert _value(env, run_id, "decorated_sensor") == "sensed-hi"
    schedule_again(env)  # `say` is ready once its upstream sensor succeeded
    assert run_in_process(env, "runtime_sensors", run_id, "say").state == "success"
    said = str(_value(env, run_id, "say"))
    ds = said.removeprefix("sensed-hi-")[:10]
    assert said == f"sensed-hi-{ds}-{ds}"  # the returned command was rendered ({{ ds }}) and ds was passed


def test_python_sensor_soft_fail_skips_when_the_callable_stays_false(env: Env) -> None:
    run_id = queue_run(env, "runtime_sensors", ready="no")
    assert run_in_process(env, "runtime_sensors", run_id, "py_ready").state == "skipped"


def test_bash_output_processor_env_cwd_and_missing_cwd(env: Env) -> None:
    run_id = queue_run(env, "runtime_bash")
    assert run_in_process(env, "runtime_bash", run_id, "processed").state == "success"
    assert _value(env, run_id, "processed") == {"n": 7, "where": "/tmp"}
    failed = run_in_process(env, "runtime_bash", run_id, "bad_cwd")
    assert failed.state == "failed" and "Can not find the cwd" in (failed.error or "")


def test_virtualenv_task_runs_in_a_new_cached_venv_and_external_python_in_its_interpreter(env: Env) -> None:
    import sys

    run_id = queue_run(env, "runtime_venv")
    assert run_in_process(env, "runtime_venv", run_id, "seed").state == "success"
    schedule_again(env)
    outcome = run_in_process(env, "runtime_venv", run_id, "in_venv")
    assert outcome.state == "success", outcome.error
    got = _value(env, run_id, "in_venv")
    assert isinstance(got, dict) and got["doubled"] == 40
    venvs = env.home.parent / "out" / "venvs"  # venv_cache_path, a template field
    assert str(got["prefix"]).startswith(str(venvs)) and got["prefix"] != sys.prefix
    assert [p.name for p in venvs.iterdir()] == [Path(str(got["prefix"])).name]  # built once, renamed in place
    again = run_in_process(env, "runtime_venv", run_id, "in_venv", try_number=None)  # a new try reuses it
    assert again.state == "success" and _value(env, run_id, "in_venv") == got
    assert run_in_process(env, "runtime_venv", run_id, "external").state == "success"
    assert _value(env, run_id, "external") == "hi@/usr/bin/python3"
