"""Branching, short circuits, setup/teardown, depends_on_past and a forged skip list with a real
scheduler and worker, on SQLite and PostgreSQL: the task process reports its skips over the task
channel, the worker records them only for tasks downstream of it."""

from __future__ import annotations

from tests.support.env import Env
from tests.support.runs import run_dag, states, trigger, wait
from tests.support.services import wait_until


def _states(env: Env, dag_id: str, run_id: str) -> dict[str, str]:
    return {task_id: row.state for task_id, row in states(env, dag_id, run_id).items()}


def test_branches_short_circuits_and_teardowns_run_as_in_airflow(env: Env) -> None:
    env.scheduler()
    env.worker()
    run_id, final = run_dag(env, "branch_join")
    assert final.state == "success", env.logs()
    assert _states(env, "branch_join", run_id) == {
        "choose": "success",
        "left": "success",
        "right": "skipped",
        "after_right": "skipped",
        "join": "success",
    }
    for dag_id, expected in {
        "short_circuit_all": {"check": "success", "direct": "skipped", "later": "skipped"},
        "short_circuit_direct": {"check": "success", "direct": "skipped", "later": "success"},
    }.items():
        run_id, final = run_dag(env, dag_id)
        assert (final.state, _states(env, dag_id, run_id)) == ("success", expected), env.logs()
    run_id, final = run_dag(env, "teardown_after_failure")
    assert final.state == "failed"
    assert _states(env, "teardown_after_failure", run_id) == {
        "make_cluster": "success",
        "work": "failed",
        "delete_cluster": "success",
    }
    run_id, final = run_dag(env, "teardown_fails")
    assert final.state == "success"
    assert _states(env, "teardown_fails", run_id)["remove"] == "failed"


def test_worker_refuses_a_forged_skip_of_a_task_that_is_not_downstream(env: Env) -> None:
    env.scheduler()
    env.worker()
    run_id = trigger(env, "forged_skip", wait_for_release=True)
    wait_until(
        lambda: _states(env, "forged_skip", run_id).get("forger") == "failed", 60, what="the forger's end recorded"
    )
    rows = states(env, "forged_skip", run_id)
    assert "refused to skip ['bystander']" in (rows["forger"].reason or "")
    assert rows["bystander"].state == "none"  # held back by its gate: the forged skip could have hit it
    (env.home.parent / "out" / "release").write_text("go")
    final = wait(env, "forged_skip", run_id)
    assert final.state == "failed"
    assert _states(env, "forged_skip", run_id)["bystander"] == "success"


def test_depends_on_past_holds_a_task_until_its_previous_run_succeeded(env: Env) -> None:
    env.scheduler()
    env.worker()
    first, final = run_dag(env, "past_dependent", fail=True)
    assert final.state == "failed"
    second = trigger(env, "past_dependent")
    wait_until(lambda: _states(env, "past_dependent", second).get("free") == "success", 60, what="free done")
    assert _states(env, "past_dependent", second)["step"] == "none"
    from rabbitrun import client

    client.set_task_state(env.settings(), "past_dependent", "step", first, "success")
    assert wait(env, "past_dependent", second).state == "success"
