"""``dags test``: a whole DAG run in this process, without broker or workers.

The scheduler's own decisions (start the run, find ready task instances) and the
runner's attempts alternate in a loop, so a DAG author debugs exactly the code paths
a deployment runs (Airflow's ``airflow dags test``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rabbitrun.authoring import DagBag, resolve_params
from rabbitrun.models import runs
from rabbitrun.models.base import utcnow
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.views import TaskStateRow
from rabbitrun.runner.inprocess import run_attempt
from rabbitrun.scheduler import readiness
from rabbitrun.scheduler.runs import start_queued_runs
from rabbitrun.settings import Settings, default_hostname
from rabbitrun.states import FINISHED_RUN_STATES

_IDLE_S = 0.05  # nothing to run: a retry delay is pending


def run_dag_in_process(
    settings: Settings, dag_id: str, *, conf: dict[str, Any] | None = None
) -> tuple[str, list[TaskStateRow]]:
    """Run ``dag_id`` to its end (retries wait their delay); returns the run id and its task instances."""
    bag = DagBag(
        Path(settings.core.dags_folder),
        include_examples=settings.core.load_examples,
        plugins_folder=Path(settings.core.plugins_folder) if settings.core.plugins_folder else None,
    )
    resolve_params(bag.get_dag(dag_id).params, conf)  # DagNotFound, ParamValidationError before anything is written
    sessions = session_factory(make_engine(settings.database, pooled=False))
    run_id = f"test__{utcnow().isoformat(timespec='microseconds')}"
    with sessions() as session:
        runs.create_run(session, dag_id, run_id, conf or {}, utcnow())
        start_queued_runs(session, bag, settings, utcnow())
    finished = {s.value for s in FINISHED_RUN_STATES}
    while True:
        with sessions() as session:
            envelopes = readiness.schedule(session, bag, settings, utcnow(), only=[(dag_id, run_id)])
        for envelope in envelopes:
            run_attempt(settings, sessions, bag, envelope.key, hostname=default_hostname(), in_process=True)
        with sessions() as session:
            state, _ = runs.state_and_counts(session, dag_id, run_id)
            if state in finished:
                return run_id, runs.task_state_rows(session, dag_id, run_id)
        if not envelopes:
            time.sleep(_IDLE_S)
