"""Running one attempt of a task instance here, in this process (`rabbitrun tasks run`)."""

from __future__ import annotations

from typing import Any

from rabbitrun.client.dags import dagbag
from rabbitrun.client.db import sessions_for
from rabbitrun.errors import DagError, DagRunNotFound
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.settings import Settings


def run_task(
    settings: Settings,
    dag_id: str,
    task_id: str,
    run_id: str,
    *,
    map_index: int = -1,
    try_number: int | None = None,
    hostname: str,
) -> Any:
    """Run one attempt here, through the runner the worker's child uses.

    With no try number, a finished or never-queued task instance gets a new
    try (QUEUED, try_number + 1) first, as `airflow tasks run` would.
    """
    from rabbitrun.authoring import MappedOperator
    from rabbitrun.models import attempts, transitions
    from rabbitrun.models.base import utcnow
    from rabbitrun.runner import inprocess
    from rabbitrun.states import CLAIMABLE_STATES, TaskState

    bag = dagbag(settings)
    if isinstance(bag.get_dag(dag_id).get_task(task_id), MappedOperator) and map_index < 0:
        raise DagError(
            f"{dag_id}.{task_id} is a mapped task: give --map-index of one of its instances (`tasks states` lists them)"
        )
    sessions = sessions_for(settings)
    with sessions() as session:
        ti = attempts.get_ti(session, TaskInstanceKey(dag_id, task_id, run_id, map_index))
        if ti is None:
            raise DagRunNotFound(dag_id, run_id)
        if try_number is None:
            if ti.state not in {s.value for s in CLAIMABLE_STATES}:
                transitions.change(
                    session,
                    ti,
                    transitions.RUN_HERE,
                    TaskState.QUEUED,
                    try_number=ti.try_number + 1,
                    queued_at=utcnow(),
                )
                session.commit()
            try_number = ti.try_number
    key = TaskInstanceKey(dag_id, task_id, run_id, map_index, try_number)
    return inprocess.run_attempt(settings, sessions, bag, key, hostname=hostname, in_process=True)
