"""Test helpers shared by the system and fault suites: trigger, wait, read states and side effects."""

from __future__ import annotations

from rabbitrun import client
from tests.conftest import Env


def trigger(env: Env, dag_id: str, **conf: object) -> str:
    out_dir = env.home.parent / "out"
    return client.trigger(env.settings(), dag_id, conf={"out_dir": str(out_dir), **conf})


def wait(env: Env, dag_id: str, run_id: str, timeout_s: float = 60) -> client.RunProgress:
    return client.wait_for_run(env.settings(), dag_id, run_id, on_progress=lambda p: None, timeout_s=timeout_s)


def run_dag(env: Env, dag_id: str, timeout_s: float = 60, **conf: object) -> tuple[str, client.RunProgress]:
    run_id = trigger(env, dag_id, **conf)
    return run_id, wait(env, dag_id, run_id, timeout_s)


def states(env: Env, dag_id: str, run_id: str) -> dict[str, client.TaskStateRow]:
    return {r.task_id: r for r in client.task_states(env.settings(), dag_id, run_id)}


def lines(env: Env, name: str) -> list[str]:
    path = env.home.parent / "out" / f"{name}.lines"
    return path.read_text().splitlines() if path.exists() else []
