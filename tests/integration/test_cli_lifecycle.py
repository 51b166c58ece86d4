"""The CLI against a real database: config, db init/check/reset, one attempt run in-process
with `tasks run` (the worker child's code path), its states and its log; bad input."""

from __future__ import annotations

import json

from tests.support.env import Env
from tests.support.runs import queue_run


def test_config_show_masks_passwords_and_reports_sources(env: Env) -> None:
    env.vars["RABBITRUN__BROKER__URL"] = "amqp://user:hunter2@broker.example:5672/vh"
    out = env.cli("config", "show", "--json")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["broker"]["url"] == "amqp://user:***@broker.example:5672/vh"
    assert "hunter2" not in out.stdout
    assert shown["core"]["dags_folder"] == env.vars["RABBITRUN__CORE__DAGS_FOLDER"]
    env.vars["RABBITRUN__BROKER__URLL"] = "x"
    bad = env.cli("config", "show")
    assert bad.returncode == 2 and "did you mean 'url'" in bad.stderr


def test_db_check_and_reset(env: Env) -> None:
    assert env.cli("db", "check").returncode == 0
    run_id = queue_run(env, "simple")
    reset = env.cli("db", "reset", "--yes")
    assert reset.returncode == 0, reset.stderr
    assert env.cli("db", "check").returncode == 0
    gone = env.cli("tasks", "states", "simple", run_id)
    assert gone.returncode == 2 and "not found" in gone.stderr


def test_tasks_run_claims_runs_and_records_one_attempt(env: Env) -> None:
    run_id = queue_run(env, "simple")
    out = env.cli("tasks", "run", "simple", "one", run_id, "--try-number", "1")
    assert out.returncode == 0, out.stderr
    assert "try=1: success" in out.stdout
    again = env.cli("tasks", "run", "simple", "one", run_id, "--try-number", "1")
    assert "not_claimed" in again.stdout  # the same attempt never runs twice
    assert len((env.home.parent / "out" / "one.lines").read_text().splitlines()) == 1
    states = env.cli("tasks", "states", "simple", run_id)
    assert "success" in states.stdout and "one" in states.stdout
    logs = env.cli("tasks", "logs", "simple", "one", run_id)
    assert logs.returncode == 0 and "Marking task as SUCCESS" in logs.stdout
    rerun = env.cli("tasks", "run", "simple", "one", run_id)  # no try number: a new try
    assert "try=2: success" in rerun.stdout


def test_unknown_dag_or_task_is_one_line_and_exit_2(env: Env) -> None:
    for args in (
        ["dags", "trigger", "nope"],
        ["tasks", "run", "simple", "nope", "r"],
        ["tasks", "run", "nope", "one", "r"],
    ):
        out = env.cli(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1


def test_trigger_refuses_a_run_id_that_would_leave_the_log_folder(env: Env) -> None:
    for bad in ("../../../tmp/x", "a/b", "has space"):
        out = env.cli("dags", "trigger", "simple", "--run-id", bad)
        assert out.returncode == 2 and "invalid run_id" in out.stderr, out.stderr
    ok = env.cli("dags", "trigger", "simple", "--run-id", "mine.1~a:b+c-d")
    assert ok.returncode == 0, ok.stderr
