"""Test helpers shared by the system and fault suites: trigger, wait, read states and side effects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rabbitrun import client
from rabbitrun.models import runs
from rabbitrun.models.base import utcnow
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.scheduler import readiness
from rabbitrun.scheduler.runs import start_queued_runs, sync_dags
from tests.support.env import Env
from tests.support.services import rabbitmqctl


def trigger(env: Env, dag_id: str, **conf: object) -> str:
    out_dir = env.home.parent / "out"
    return client.trigger(env.settings(), dag_id, conf={"out_dir": str(out_dir), **conf})


def wait(env: Env, dag_id: str, run_id: str, timeout_s: float = 60) -> client.RunProgress:
    return client.wait_for_run(env.settings(), dag_id, run_id, on_progress=lambda p: None, timeout_s=timeout_s)


def infra_retries(env: Env, dag_id: str, run_id: str) -> dict[str, int]:
    """How often each task instance of a run was re-run (same try) because its lease expired."""
    from rabbitrun.models.tables import TaskInstance

    with session_factory(make_engine(env.settings().database, pooled=False))() as session:
        query = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id)
        return {ti.task_id: ti.infra_retries for ti in query}


def run_dag(env: Env, dag_id: str, timeout_s: float = 60, **conf: object) -> tuple[str, client.RunProgress]:
    run_id = trigger(env, dag_id, **conf)
    return run_id, wait(env, dag_id, run_id, timeout_s)


def states(env: Env, dag_id: str, run_id: str) -> dict[str, client.TaskStateRow]:
    return {r.task_id: r for r in client.task_states(env.settings(), dag_id, run_id)}


def lines(env: Env, name: str) -> list[str]:
    path = env.home.parent / "out" / f"{name}.lines"
    return path.read_text().splitlines() if path.exists() else []


def queue_run(env: Env, dag_id: str, **conf: object) -> str:
    """Create a run and queue its ready tasks the way the scheduler does, without a broker."""
    settings = env.settings()
    run_id = client.trigger(settings, dag_id, conf={"out_dir": str(env.home.parent / "out"), **conf})
    bag = client.dagbag(settings)
    with session_factory(make_engine(settings.database, pooled=False))() as session:
        start_queued_runs(session, bag, settings, utcnow())
        readiness.schedule(session, bag, settings, utcnow())
    return run_id


def schedule_again(env: Env) -> None:
    settings = env.settings()
    with session_factory(make_engine(settings.database, pooled=False))() as session:
        readiness.schedule(session, client.dagbag(settings), settings, utcnow())


def queue_counts(vhost: str, queue: str) -> tuple[int, int]:
    """(ready, unacknowledged) messages of one queue, read from the broker (read-only)."""
    out = rabbitmqctl(
        "list_queues", "-p", vhost, "--no-table-headers", "name", "messages_ready", "messages_unacknowledged"
    )
    for line in out.strip().splitlines():
        name, ready, unacked = line.split("\t")
        if name == queue:
            return int(ready), int(unacked)
    return 0, 0


def start_run(
    sessions: Any, settings: Any, bag: Any, dag_id: str, run_id: str, now: datetime, conf: dict[str, Any] | None = None
) -> None:
    """Register the bag's DAGs, then create and start one run (its task instances inserted), as
    `dags trigger` and the scheduler's first pass do, without a broker."""
    with sessions() as session:
        sync_dags(session, bag, now)
        runs.create_run(session, dag_id, run_id, conf or {}, now)
        start_queued_runs(session, bag, settings, now)
