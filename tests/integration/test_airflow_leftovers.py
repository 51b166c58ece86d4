"""ExternalTaskMarker's clear into the other DAG, branching in another interpreter, the *Async
sensors in reschedule mode: each run whole with the CLI on the real DB (SQLite and PostgreSQL)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.env import Env

DAGS = f"""\
from datetime import timedelta

from rabbitrun import DAG, BashOperator, EmptyOperator, ExternalTaskMarker, TimeDeltaSensorAsync, task

with DAG("parent", schedule=None):
    start = EmptyOperator(task_id="start")
    start >> ExternalTaskMarker(task_id="mark", external_dag_id="child", external_task_id="t1")

with DAG("child", schedule=None):
    BashOperator(task_id="t1", bash_command="true") >> BashOperator(task_id="t2", bash_command="true")
    BashOperator(task_id="untouched", bash_command="true")

with DAG("branch_elsewhere", schedule=None):
    @task.branch_external_python(python={sys.executable!r})
    def choose():
        import sys as inner
        return "right" if inner.version_info >= (3, 0) else "left"

    choose() >> [EmptyOperator(task_id="left"), EmptyOperator(task_id="right")]

with DAG("async_sensor", schedule=None):
    TimeDeltaSensorAsync(task_id="wait", delta=timedelta(seconds=0), poke_interval=1) >> EmptyOperator(task_id="after")
"""


@pytest.fixture
def leftovers(env: Env, tmp_path: Path) -> Env:
    folder = tmp_path / "leftover_dags"
    folder.mkdir()
    (folder / "leftovers.py").write_text(DAGS)
    env.vars["RABBITRUN__CORE__DAGS_FOLDER"] = str(folder)
    env.vars["RABBITRUN__CORE__LOAD_EXAMPLES"] = "false"
    return env


def _ok(env: Env, *args: str) -> str:
    done = env.cli(*args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def _state(env: Env, dag_id: str, task_id: str, date: str) -> str:
    return _ok(env, "tasks", "state", dag_id, task_id, date).strip()


def test_clearing_an_external_task_marker_clears_the_marked_task_and_its_downstream_in_the_other_dag(
    leftovers: Env,
) -> None:
    for dag_id in ("parent", "child"):
        assert _ok(leftovers, "dags", "test", dag_id, "2024-03-04").rstrip().endswith(": success")
    _ok(leftovers, "dags", "test", "child", "2024-05-06")  # another date: must stay as it is
    out = _ok(leftovers, "tasks", "clear", "parent", "-t", "^mark$", "-y")
    assert "cleared parent.mark" in out and "cleared child.t1" in out and "cleared child.t2" in out, out
    assert out.strip().endswith("3 task instance(s)"), out
    for task_id in ("t1", "t2"):
        assert _state(leftovers, "child", task_id, "2024-03-04") != "success"
        assert _state(leftovers, "child", task_id, "2024-05-06") == "success"
    assert _state(leftovers, "child", "untouched", "2024-03-04") == "success"
    assert _state(leftovers, "parent", "start", "2024-03-04") == "success"


def test_a_branch_decided_in_another_interpreter_skips_the_path_not_chosen(leftovers: Env) -> None:
    out = _ok(leftovers, "dags", "test", "branch_elsewhere", "2024-03-04")
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[:-1]}
    assert rows == {"choose": "success", "left": "skipped", "right": "success"}, out


def test_an_async_sensor_runs_in_reschedule_mode_and_succeeds(leftovers: Env) -> None:
    done = leftovers.cli("dags", "test", "async_sensor", "2024-03-04")
    assert done.returncode == 0 and done.stdout.rstrip().endswith(": success"), (done.stdout, done.stderr)
