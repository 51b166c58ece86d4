"""DAG-level ``on_success_callback`` / ``on_failure_callback``: run once by the scheduler when a run finishes.

The scheduler calls :func:`run_callbacks` in a thread after the pass that
finished the runs has committed, so each callback runs once per finished run
(the state change is the once-only event) and a slow callback never delays
scheduling. A callback that raises is logged and changes nothing: the run's
state stands (Airflow's rule).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from rabbitrun.authoring import DAG, resolve_params
from rabbitrun.models.tables import DagRun, TaskInstance
from rabbitrun.scheduler.runs import FinishedRun
from rabbitrun.states import DagRunState, TaskState

log = logging.getLogger("rabbitrun.scheduler")


def callback_for(dag: DAG | None, state: str) -> Callable[[dict[str, Any]], Any] | None:
    if dag is None:
        return None
    return dag.on_success_callback if state == DagRunState.SUCCESS.value else dag.on_failure_callback


def has_callback(dag: DAG | None, state: str) -> bool:
    return callback_for(dag, state) is not None


def run_callbacks(todo: Sequence[tuple[FinishedRun, DAG]], sessions: sessionmaker[Session]) -> None:
    for finished, dag in todo:
        callback = callback_for(dag, finished.state)
        if callback is None:
            continue
        name = "on_success_callback" if finished.state == DagRunState.SUCCESS.value else "on_failure_callback"
        try:
            with sessions() as session:
                context = build_context(session, dag, finished)
            callback(context)
        except Exception:
            log.exception(
                "%s of DAG %s (run %s) failed; the run stays %s", name, dag.dag_id, finished.run_id, finished.state
            )
        else:
            log.info("%s of DAG %s ran for run %s", name, dag.dag_id, finished.run_id)


def build_context(session: Session, dag: DAG, finished: FinishedRun) -> dict[str, Any]:
    """What Airflow hands a DAG callback: the run, its dates and params, and why it ended."""
    run = session.execute(
        select(DagRun).where(DagRun.dag_id == finished.dag_id, DagRun.run_id == finished.run_id)
    ).scalar_one()
    session.expunge(run)
    conf = json.loads(run.conf or "{}")
    failed = (
        []
        if finished.state == DagRunState.SUCCESS.value
        else list(
            session.execute(
                select(TaskInstance.task_id).where(
                    TaskInstance.dag_id == run.dag_id,
                    TaskInstance.run_id == run.run_id,
                    TaskInstance.state == TaskState.FAILED.value,
                )
            ).scalars()
        )
    )
    return {
        "dag": dag,
        "dag_run": run,
        "run_id": run.run_id,
        "logical_date": run.logical_date,
        "ds": run.logical_date.strftime("%Y-%m-%d"),
        "ts": run.logical_date.isoformat(),
        "data_interval_start": run.data_interval_start,
        "data_interval_end": run.data_interval_end,
        "params": resolve_params(dag.params, conf, strict=False),
        "conf": conf,
        "state": finished.state,
        "reason": "success" if finished.state == DagRunState.SUCCESS.value else "task_failure",
        "failed_task_ids": failed,
    }
