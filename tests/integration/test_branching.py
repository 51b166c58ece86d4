"""Branching, short circuits, setup/teardown, depends_on_past and a forged skip list against a real DB
(SQLite and PostgreSQL), whole DAGs run in process by `dags test` (run_dag_in_process): the
in-process path plays the worker's part, skip check included. tests/system/test_branching.py runs
the same DAGs with a real scheduler and worker."""

from __future__ import annotations

from rabbitrun import client
from rabbitrun.models import runs
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.scheduler.inprocess import run_dag_in_process
from tests.support.env import Env
from tests.support.runs import queue_run, schedule_again, states


def _test_dag(env: Env, dag_id: str, **conf: object) -> tuple[str | None, dict[str, client.TaskStateRow]]:
    run_id, rows = run_dag_in_process(env.settings(), dag_id, conf={"out_dir": str(env.home.parent / "out"), **conf})
    with session_factory(make_engine(env.settings().database, pooled=False))() as session:
        state, _ = runs.state_and_counts(session, dag_id, run_id)
    return state, {r.task_id: r for r in rows}


def _states(rows: dict[str, client.TaskStateRow]) -> dict[str, str]:
    return {task_id: row.state for task_id, row in rows.items()}


def test_branch_skips_the_path_not_taken_and_the_join_runs_with_none_failed_min_one_success(env: Env) -> None:
    state, rows = _test_dag(env, "branch_join")
    assert _states(rows) == {
        "choose": "success",
        "left": "success",
        "right": "skipped",
        "after_right": "skipped",  # all_success below a skipped task: the skip cascades
        "join": "success",
    }
    assert rows["right"].reason == "skipped by choose"
    assert state == "success"


def test_branch_returning_a_list_follows_every_task_in_it(env: Env) -> None:
    state, rows = _test_dag(env, "branch_classic")
    assert _states(rows) == {"pick": "success", "a": "skipped", "b": "success", "c": "success"}
    assert state == "success"


def test_branch_naming_no_task_fails_with_a_clear_message(env: Env) -> None:
    state, rows = _test_dag(env, "branch_invalid")
    assert rows["bad"].state == "failed"
    assert "no_such_task" in (rows["bad"].reason or "") and "not tasks of DAG" in (rows["bad"].reason or "")
    assert rows["next"].state == "upstream_failed"
    assert state == "failed"


def test_short_circuit_skips_everything_downstream_by_default(env: Env) -> None:
    state, rows = _test_dag(env, "short_circuit_all")
    assert _states(rows) == {"check": "success", "direct": "skipped", "later": "skipped"}
    assert state == "success"


def test_short_circuit_respecting_trigger_rules_skips_only_direct_tasks(env: Env) -> None:
    state, rows = _test_dag(env, "short_circuit_direct")
    assert _states(rows) == {"check": "success", "direct": "skipped", "later": "success"}  # later: all_done


def test_true_short_circuit_condition_skips_nothing(env: Env) -> None:
    state, rows = _test_dag(env, "short_circuit_decorated")
    assert _states(rows) == {"go_on": "success", "ran": "success"}


def test_teardown_runs_after_the_work_failed_and_the_run_fails(env: Env) -> None:
    state, rows = _test_dag(env, "teardown_after_failure")
    assert _states(rows) == {"make_cluster": "success", "work": "failed", "delete_cluster": "success"}
    assert state == "failed"


def test_failing_teardown_does_not_fail_the_run(env: Env) -> None:
    state, rows = _test_dag(env, "teardown_fails")
    assert _states(rows) == {"create": "success", "work": "success", "remove": "failed"}
    assert state == "success"


def test_forged_skip_of_a_task_that_is_not_downstream_is_refused_in_process(env: Env) -> None:
    state, rows = _test_dag(env, "forged_skip")
    forger = rows["forger"]
    assert forger.state == "failed"
    assert "refused to skip ['bystander']" in (forger.reason or "")
    assert rows["bystander"].state == "success"  # it was still none when the forger ended: not skipped
    assert rows["after"].state == "upstream_failed"
    assert state == "failed"


def test_depends_on_past_waits_for_the_previous_run_of_the_task(env: Env) -> None:
    settings = env.settings()
    first, _ = run_dag_in_process(settings, "past_dependent", conf={"fail": True})
    assert states(env, "past_dependent", first)["step"].state == "failed"
    second = queue_run(env, "past_dependent")
    schedule_again(env)
    rows = states(env, "past_dependent", second)
    assert (rows["step"].state, rows["free"].state) == ("none", "queued")  # step waits, free does not
    client.set_task_state(settings, "past_dependent", "step", first, "success")
    schedule_again(env)
    assert states(env, "past_dependent", second)["step"].state == "queued"


def test_depends_on_past_lets_the_first_run_and_a_run_after_success_go(env: Env) -> None:
    first, _ = run_dag_in_process(env.settings(), "past_dependent")
    assert states(env, "past_dependent", first)["step"].state == "success"
    second = queue_run(env, "past_dependent")
    assert states(env, "past_dependent", second)["step"].state == "queued"


def test_wait_for_downstream_waits_for_the_previous_runs_downstream_tasks_too(env: Env) -> None:
    settings = env.settings()
    first, _ = run_dag_in_process(settings, "past_wait_downstream", conf={"fail": True})
    assert {k: r.state for k, r in states(env, "past_wait_downstream", first).items()} == {
        "step": "success",
        "after": "failed",
    }
    second = queue_run(env, "past_wait_downstream")
    assert states(env, "past_wait_downstream", second)["step"].state == "none"
    client.set_task_state(settings, "past_wait_downstream", "after", first, "success")
    schedule_again(env)
    assert states(env, "past_wait_downstream", second)["step"].state == "queued"


def test_latest_only_lets_a_manual_run_proceed(env: Env) -> None:
    state, rows = _test_dag(env, "latest_only_manual")
    assert (state, _states(rows)) == ("success", {"latest": "success", "report": "success"})
