"""A DAG run's progress and task states, waiting for it to finish, and changing them by hand:
clearing task instances, marking a task instance or a run success or failed (:mod:`.marking`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rabbitrun.client.dags import dagbag
from rabbitrun.client.db import sessions_for
from rabbitrun.errors import DagDefinitionError, DagRunNotFound, RunWaitTimeout
from rabbitrun.models.views import TaskStateRow
from rabbitrun.settings import Settings


@dataclass(frozen=True, slots=True)
class RunProgress:
    state: str
    total: int
    done: int
    running: int
    failed: int
    queued: int
    waiting: int = 0  # up_for_retry, or a sensor between pokes (up_for_reschedule)


def run_progress(settings: Settings, dag_id: str, run_id: str, sessions: Any = None) -> RunProgress:
    from rabbitrun.models import runs

    with (sessions or sessions_for(settings))() as session:
        state, counts = runs.state_and_counts(session, dag_id, run_id)
    if state is None:
        raise DagRunNotFound(dag_id, run_id)
    return _progress(state, counts)


def _progress(run_state: str, counts: dict[str, int]) -> RunProgress:
    from rabbitrun.states import DUE_STATES, FINISHED_TASK_STATES, TaskState

    total = sum(counts.values())
    done = sum(n for s, n in counts.items() if s in {x.value for x in FINISHED_TASK_STATES})
    failed = counts.get(TaskState.FAILED.value, 0) + counts.get(TaskState.UPSTREAM_FAILED.value, 0)
    return RunProgress(
        run_state,
        total,
        done,
        counts.get(TaskState.RUNNING.value, 0),
        failed,
        counts.get(TaskState.QUEUED.value, 0),
        sum(counts.get(s.value, 0) for s in DUE_STATES),
    )


def wait_for_run(
    settings: Settings,
    dag_id: str,
    run_id: str,
    *,
    on_progress: Callable[[RunProgress], None],
    poll_s: float = 0.02,
    timeout_s: float | None = None,
) -> RunProgress:
    """Poll the run until it is success or failed, reporting progress whenever it changes.
    Two indexed queries per poll on one connection: cheap next to the wait it shortens."""
    from rabbitrun.models.lean import LeanDB
    from rabbitrun.states import FINISHED_RUN_STATES

    lean = LeanDB.open(settings.database)
    read: Callable[[], RunProgress]
    if lean is not None:

        def read() -> RunProgress:
            state, counts = lean.run_progress(dag_id, run_id)
            if state is None:
                raise DagRunNotFound(dag_id, run_id)
            return _progress(state, counts)
    else:
        sessions = sessions_for(settings)

        def read() -> RunProgress:
            return run_progress(settings, dag_id, run_id, sessions)

    deadline = time.monotonic() + timeout_s if timeout_s else None
    last = None
    try:
        while True:
            progress = read()
            if progress != last:
                on_progress(progress)
                last = progress
            if progress.state in {s.value for s in FINISHED_RUN_STATES}:
                return progress
            if deadline is not None and time.monotonic() > deadline:
                raise RunWaitTimeout(dag_id, run_id, timeout_s or 0.0)
            time.sleep(poll_s)
    finally:
        if lean is not None:
            lean.close()


def task_states(settings: Settings, dag_id: str, run_id: str) -> list[TaskStateRow]:
    from rabbitrun.models import runs

    with sessions_for(settings)() as session:
        return runs.task_state_rows(session, dag_id, run_id)


# --- run management (issue 7) -------------------------------------------------------------------


def clear_tasks(
    settings: Settings,
    dag_id: str,
    *,
    task_regex: str = ".*",
    run_id: str | None = None,
    downstream: bool = False,
    dry_run: bool = False,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[tuple[str, str]]:
    """Reset matching finished task instances (and optionally their downstream) so they run again
    with a new try; their runs go back to running. Returns (run_id, task_id) pairs cleared.

    ``start``/``end`` (Airflow's ``tasks clear -s -e``) limit it to runs whose logical date is
    within them."""
    import re

    from rabbitrun.models import clearing

    dag = dagbag(settings).get_dag(dag_id)
    pattern = re.compile(task_regex)
    chosen = {t.task_id for t in dag.tasks if pattern.search(t.task_id)}
    if downstream:
        todo = list(chosen)
        while todo:
            for child in dag.get_task(todo.pop()).downstream_task_ids:
                if child not in chosen:
                    chosen.add(child)
                    todo.append(child)
    retries = {task_id: dag.get_task(task_id).retries for task_id in chosen}
    if start is None and end is None:
        wanted: list[str | None] = [run_id]
    else:
        from rabbitrun.client.lookup import run_ids_between

        wanted = [r for r in run_ids_between(settings, dag_id, start, end) if run_id is None or r == run_id]
    cleared: list[tuple[str, str]] = []
    with sessions_for(settings)() as session:
        for one in wanted:
            cleared.extend(clearing.clear(session, dag_id, retries, run_id=one, dry_run=dry_run))
    return sorted(cleared)


def clear_following_markers(
    settings: Settings,
    dag_id: str,
    *,
    task_regex: str = ".*",
    run_id: str | None = None,
    downstream: bool = False,
    dry_run: bool = False,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[tuple[str, str, str]]:
    """:func:`clear_tasks`, then, for each ExternalTaskMarker it cleared, the marked task (and its
    downstream) in the other DAG's run at the marker's logical date, recursively up to the marker's
    ``recursion_depth`` (Airflow's ``tasks clear`` of a marker). Returns (dag_id, run_id, task_id)."""
    found = [
        (dag_id, r, t)
        for r, t in clear_tasks(
            settings,
            dag_id,
            task_regex=task_regex,
            run_id=run_id,
            downstream=downstream,
            dry_run=dry_run,
            start=start,
            end=end,
        )
    ]
    return found + _follow_markers(settings, found, dry_run, depth=None)


def _follow_markers(
    settings: Settings, cleared: list[tuple[str, str, str]], dry_run: bool, depth: int | None
) -> list[tuple[str, str, str]]:
    import re

    from rabbitrun.authoring import ExternalTaskMarker
    from rabbitrun.client.lookup import run_ids_between

    bag = dagbag(settings)
    more: list[tuple[str, str, str]] = []
    for dag_id, run_id, task_id in cleared:
        marker = bag.get_dag(dag_id).get_task(task_id)
        if not isinstance(marker, ExternalTaskMarker):
            continue
        left = marker.recursion_depth if depth is None else depth
        if left < 1:
            raise DagDefinitionError(
                f"ExternalTaskMarker {dag_id}.{task_id}: clearing went deeper than its recursion_depth; "
                "is there a cycle of markers?"
            )
        when = _marker_date(settings, marker, dag_id, run_id)
        for other_run in run_ids_between(settings, marker.external_dag_id, when, when):
            pairs = clear_tasks(
                settings,
                marker.external_dag_id,
                task_regex=f"^{re.escape(marker.external_task_id)}$",
                run_id=other_run,
                downstream=True,
                dry_run=dry_run,
            )
            found = [(marker.external_dag_id, r, t) for r, t in pairs]
            more += found + _follow_markers(settings, found, dry_run, left - 1)
    return more


def _marker_date(settings: Settings, marker: Any, dag_id: str, run_id: str) -> datetime:
    """The other run's logical date: the marker's ``logical_date`` template rendered with its run's
    ``logical_date``, ``ds`` and ``ts`` (what Airflow's marker templates use)."""
    from rabbitrun.authoring.templating import render
    from rabbitrun.client.lookup import find_run

    own = find_run(settings, dag_id, run_id).logical_date
    if own.tzinfo is None:
        own = own.replace(tzinfo=UTC)
    text = marker.logical_date
    if not text:
        return own
    rendered = render(
        text, {"logical_date": own, "ds": own.strftime("%Y-%m-%d"), "ts": own.isoformat()}, "logical_date"
    )
    value = datetime.fromisoformat(str(rendered))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def set_task_state(
    settings: Settings, dag_id: str, task_id: str, run_id: str, state: str, *, map_index: int = -1
) -> Any:
    """Mark one task instance success or failed; the scheduler continues downstream from it."""
    from rabbitrun.client import marking

    dag = dagbag(settings).get_dag(dag_id)
    with sessions_for(settings)() as session:
        return marking.set_task_state(session, dag, run_id, task_id, state, datetime.now(UTC), map_index)


def set_run_state(settings: Settings, dag_id: str, run_id: str, state: str) -> Any:
    """Mark a whole DAG run success or failed, with its unfinished task instances."""
    from rabbitrun.client import marking

    with sessions_for(settings)() as session:
        return marking.set_run_state(session, dag_id, run_id, state, datetime.now(UTC))
