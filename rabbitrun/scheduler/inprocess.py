"""``dags test`` and ``tasks test``: a whole DAG run, or one task, in this process, without broker or workers.

The scheduler's own decisions (start the run, find ready task instances) and the
runner's attempts alternate in a loop, so a DAG author debugs exactly the code paths
a deployment runs (Airflow's ``airflow dags test``).
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete

from rabbitrun.authoring import DagBag, MappedOperator, resolve_params
from rabbitrun.authoring.timetables import Interval
from rabbitrun.errors import DagError
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models import runs
from rabbitrun.models.base import utcnow
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.tables import DagRun, TaskAttempt, TaskInstance, TaskReschedule, XComRow
from rabbitrun.models.views import TaskStateRow
from rabbitrun.runner.attempt import AttemptOutcome
from rabbitrun.runner.inprocess import run_attempt
from rabbitrun.scheduler import readiness
from rabbitrun.scheduler.runs import start_queued_runs
from rabbitrun.settings import Settings, default_hostname
from rabbitrun.states import FINISHED_RUN_STATES, DagRunState, TaskState

_IDLE_S = 0.05  # nothing to run: a retry delay is pending


def run_dag_in_process(
    settings: Settings, dag_id: str, *, conf: dict[str, Any] | None = None, logical_date: datetime | None = None
) -> tuple[str, list[TaskStateRow]]:
    """Run ``dag_id`` to its end (retries wait their delay); returns the run id and its task instances.

    ``logical_date`` (Airflow's ``dags test DAG_ID LOGICAL_DATE``) is the run's logical date and
    data interval; by default, now.
    """
    bag = DagBag(
        Path(settings.core.dags_folder),
        include_examples=settings.core.load_examples,
        airflow_compat=settings.core.airflow_compat,
        plugins_folder=Path(settings.core.plugins_folder) if settings.core.plugins_folder else None,
    )
    resolve_params(bag.get_dag(dag_id).params, conf)  # DagNotFound, ParamValidationError before anything is written
    sessions = session_factory(make_engine(settings.database, pooled=False))
    run_id = f"test__{utcnow().isoformat(timespec='microseconds')}"
    with sessions() as session:
        interval = Interval(logical_date, logical_date) if logical_date is not None else None
        runs.create_run(session, dag_id, run_id, conf or {}, utcnow(), interval=interval)
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


def test_task_in_process(
    settings: Settings, dag_id: str, task_id: str, *, logical_date: datetime | None = None
) -> AttemptOutcome:
    """Airflow's ``tasks test``: run one task here, its upstream ignored, and leave no state behind.

    The attempt needs a run and a task instance to claim (the runner's code path is the one a
    worker uses), so both are written under a ``tasks_test__`` run id of their own, RUNNING from the
    start so no scheduler starts the run's other tasks, and deleted with their attempt, XComs and
    reschedules when the task ends, whatever its outcome.
    """
    bag = DagBag(
        Path(settings.core.dags_folder),
        include_examples=settings.core.load_examples,
        airflow_compat=settings.core.airflow_compat,
    )
    task = bag.get_dag(dag_id).get_task(task_id)  # DagNotFound / TaskNotFound before anything is written
    if isinstance(task, MappedOperator):
        raise DagError(f"{dag_id}.{task_id} is a mapped task: `tasks test` runs unmapped tasks (use `dags test`)")
    engine = make_engine(settings.database, pooled=False)
    sessions = session_factory(engine)
    now = utcnow()
    run_id = f"tasks_test__{now.isoformat(timespec='microseconds')}"
    when = logical_date or now
    with sessions() as session:
        run = runs.create_run(session, dag_id, run_id, {}, now, interval=Interval(when, when), commit=False)
        run.state, run.start_date = DagRunState.RUNNING.value, now
        session.add(
            TaskInstance(
                dag_id=dag_id,
                task_id=task_id,
                run_id=run_id,
                map_index=-1,
                state=TaskState.QUEUED.value,
                try_number=1,
                max_tries=0,  # no retry after this one try, as in Airflow's tasks test
                queue=task.queue or settings.core.default_queue,
                pool=task.pool,
                pool_slots=task.pool_slots,
                operator=type(task).__name__,
                queued_at=now,
            )
        )
        session.commit()
    try:
        key = TaskInstanceKey(dag_id, task_id, run_id, -1, 1)
        return run_attempt(settings, sessions, bag, key, hostname=default_hostname(), in_process=True)
    finally:
        with sessions() as session:
            for model in (TaskInstance, TaskAttempt, TaskReschedule, XComRow):
                session.execute(delete(model).where(model.dag_id == dag_id, model.run_id == run_id))
            session.execute(delete(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
            session.commit()
        engine.dispose()
