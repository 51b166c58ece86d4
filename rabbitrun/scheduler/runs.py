"""What the scheduler decides about DAG runs, against the metadata DB: which to create, start and finish.

Synchronous and broker-free so the scheduler loop can run it in a thread and
tests can call it directly. Several schedulers may share one PostgreSQL
database: each creates and starts runs only of the DAGs it could lock
(``FOR UPDATE SKIP LOCKED``). The task instances of running runs are
evaluated by :mod:`rabbitrun.scheduler.readiness`, which finishes a run
here once all of them are finished; the rest are the cheap queries the
scheduler loop polls with.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.orm import Session

from rabbitrun.authoring import DAG, DagBag, effective_leaves
from rabbitrun.errors import DagNotFound
from rabbitrun.models import runs
from rabbitrun.models.tables import DagImportErrorRow, DagModel, DagRun, TaskInstance
from rabbitrun.settings import Settings
from rabbitrun.states import DUE_STATES, FINISHED_TASK_STATES, DagRunState, TaskState

log = logging.getLogger("rabbitrun.scheduler")


_FAILED = {TaskState.FAILED.value, TaskState.UPSTREAM_FAILED.value}
FINISHED = {s.value for s in FINISHED_TASK_STATES}
_UNFINISHED = sorted(s.value for s in TaskState if s not in FINISHED_TASK_STATES)  # IN, not NOT IN: index ranges
DUE = {s.value for s in DUE_STATES}


@dataclass(frozen=True, slots=True)
class FinishedRun:
    """A run this pass finished, for the DAG's on_success/on_failure callback."""

    dag_id: str
    run_id: str
    state: str


def sync_dags(session: Session, dagbag: DagBag, now: datetime) -> None:
    """Mirror parsed DAGs and import errors into the DB, for `dags list` and triggering."""
    for dag_id, dag in dagbag.dags.items():
        row = session.get(DagModel, dag_id)
        if row is None:
            session.add(
                DagModel(dag_id=dag_id, fileloc=dag.fileloc, description=dag.description or None, last_parsed_at=now)
            )
        else:
            row.fileloc, row.last_parsed_at = dag.fileloc, now
    session.execute(delete(DagImportErrorRow))
    for ref, err in dagbag.import_errors.items():
        session.add(
            DagImportErrorRow(
                filename=ref, lineno=err.lineno, exception=err.exception, stacktrace=err.traceback, timestamp=now
            )
        )
    session.commit()


def create_scheduled_runs(session: Session, dagbag: DagBag, now: datetime) -> list[DagRun]:
    """Create the runs whose data interval has ended (cron / preset / timedelta / @once, catchup)."""
    from rabbitrun.authoring import timetables

    mine = _lock_dags(session, [d for d, dag in dagbag.dags.items() if dag.schedule is not None])
    created = []
    for dag_id, dag in dagbag.dags.items():
        if dag.schedule is None or dag_id not in mine:
            continue
        last_end, has_runs = session.execute(
            select(func.max(DagRun.data_interval_end), func.count()).where(
                DagRun.dag_id == dag_id, DagRun.run_type.in_(("scheduled", "backfill"))
            )
        ).one()
        for interval in timetables.due(
            dag.schedule, dag.start_date, dag.end_date, last_end, now, dag.catchup, bool(has_runs)
        ):
            created.append(
                runs.create_run(
                    session,
                    dag_id,
                    f"scheduled__{interval.start.isoformat()}",
                    {},
                    now,
                    run_type="scheduled",
                    interval=interval,
                    commit=False,
                )
            )
    session.commit()
    return created


def _lock_dags(session: Session, dag_ids: Sequence[str]) -> set[str]:
    """The DAGs among ``dag_ids`` this scheduler may create and start runs of now: not paused, and
    not locked by another scheduler doing the same (PostgreSQL; SQLite has one scheduler). A DAG
    without a row yet (not synced) is not locked by anyone and counts as mine."""
    if not dag_ids:
        return set()
    rows = set(session.execute(select(DagModel.dag_id).where(DagModel.dag_id.in_(dag_ids))).scalars())
    locked = set(
        session.execute(
            select(DagModel.dag_id)
            .where(DagModel.dag_id.in_(dag_ids), DagModel.is_paused.is_(False))
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    return locked | (set(dag_ids) - rows)


ANALYZE_AFTER_ROWS = 2000  # task instances inserted at once (PostgreSQL)


def start_queued_runs(session: Session, dagbag: DagBag, settings: Settings, now: datetime) -> list[DagRun]:
    """QUEUED runs -> RUNNING with one task instance per task, oldest logical date first and at most
    ``max_active_runs`` running per DAG; a run of an unknown DAG fails. Runs of a paused DAG stay
    queued until `dags unpause`; those of a DAG another scheduler is starting runs of wait for it."""
    waiting = list(
        session.execute(select(DagRun.dag_id).where(DagRun.state == DagRunState.QUEUED.value).distinct()).scalars()
    )
    mine = _lock_dags(session, waiting)
    # counted after the lock: another scheduler's started runs are committed by now
    runs = (
        session.execute(
            select(DagRun)
            .where(DagRun.state == DagRunState.QUEUED.value, DagRun.dag_id.in_(mine))
            .order_by(DagRun.logical_date)
        )
        .scalars()
        .all()
    )
    active = dict(
        session.execute(
            select(DagRun.dag_id, func.count()).where(DagRun.state == DagRunState.RUNNING.value).group_by(DagRun.dag_id)
        ).all()
    )
    started: list[DagRun] = []
    rows: list[dict[str, Any]] = []
    for run in runs:
        dag_for_limit = dagbag.dags.get(run.dag_id)
        if dag_for_limit is not None and active.get(run.dag_id, 0) >= dag_for_limit.max_active_runs:
            continue  # max_active_runs: waits for a running one to finish
        active[run.dag_id] = active.get(run.dag_id, 0) + 1
        try:
            dag = dagbag.get_dag(run.dag_id)
        except DagNotFound:
            log.error("run %s of DAG %s cannot start: the scheduler has no such DAG", run.run_id, run.dag_id)
            run.state, run.end_date = DagRunState.FAILED.value, now
            continue
        run.state, run.start_date = DagRunState.RUNNING.value, now
        rows.extend(
            dict(
                dag_id=run.dag_id,
                task_id=task.task_id,
                run_id=run.run_id,
                map_index=-1,
                state=TaskState.NONE.value,
                try_number=0,
                max_tries=task.max_tries,
                queue=task.queue or settings.core.default_queue,
                priority_weight=task.priority_weight,
                pool=task.pool,
                pool_slots=task.pool_slots,
                operator=type(task).__name__,
            )
            for task in dag.tasks
        )
        started.append(run)
    session.flush()  # the runs' new state first; then their task instances as multi-row INSERTs
    for chunk_start in range(0, len(rows), 1000):  # no ORM unit of work: 10,000 rows in ~0.2 s, not ~0.7 s
        session.execute(insert(TaskInstance), rows[chunk_start : chunk_start + 1000])
    if len(rows) >= ANALYZE_AFTER_ROWS and session.get_bind().dialect.name == "postgresql":
        # a bulk load: fresh statistics before this pass queues the rows. With the table's
        # statistics from before, the planner joins the queueing UPDATE through the (dag_id,
        # run_id) index and scans the whole run once per row (10,000 rows: 2.5 s instead of 0.3 s)
        session.execute(text("ANALYZE task_instance"))
    session.commit()
    return started


def finish_run_if_done(run: DagRun, dag: DAG, tis: list[TaskInstance], now: datetime, done: list[FinishedRun]) -> None:
    """Airflow's rule: a finished run failed when any leaf failed or is upstream_failed (its effective
    leaves: teardowns count only with on_failure_fail_dagrun)."""
    if any(ti.state not in FINISHED for ti in tis):
        return  # (a DAG without tasks finishes at once, as in Airflow)
    leaves = effective_leaves(dag.tasks)  # a teardown's failure does not fail the run (Airflow 2.7+)
    failed = any(ti.state in _FAILED for ti in tis if ti.task_id in leaves)
    run.state = (DagRunState.FAILED if failed else DagRunState.SUCCESS).value
    run.end_date = now
    done.append(FinishedRun(run.dag_id, run.run_id, run.state))
    log.info("DAG run %s of %s finished: %s", run.run_id, run.dag_id, run.state)


def finish_runs_if_done(
    session: Session,
    dagbag: DagBag,
    runs: Iterable[tuple[str, str]],
    now: datetime,
    finished: list[FinishedRun] | None = None,
) -> None:
    """Cheap completion check for runs whose last result was a leaf: an index probe for any
    unfinished task instance, and once there is none, a count of failed leaves."""
    done: list[FinishedRun] = []
    for dag_id, run_id in runs:
        run = session.execute(
            select(DagRun).where(
                DagRun.dag_id == dag_id, DagRun.run_id == run_id, DagRun.state == DagRunState.RUNNING.value
            )
        ).scalar_one_or_none()
        if run is None:
            continue
        mine = (TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        if (
            session.execute(
                select(TaskInstance.task_id).where(*mine, TaskInstance.state.in_(_UNFINISHED)).limit(1)
            ).first()
            is not None
        ):
            continue  # the first unfinished one found in the (dag_id, run_id, state) index answers it
        try:
            leaves = sorted(effective_leaves(dagbag.get_dag(dag_id).tasks))
        except DagNotFound:
            continue
        failed = session.execute(
            select(func.count())
            .select_from(TaskInstance)
            .where(*mine, TaskInstance.task_id.in_(leaves), TaskInstance.state.in_(list(_FAILED)))
        ).scalar_one()
        run.state = (DagRunState.FAILED if failed else DagRunState.SUCCESS).value
        run.end_date = now
        done.append(FinishedRun(run.dag_id, run.run_id, run.state))
        log.info("DAG run %s of %s finished: %s", run.run_id, run.dag_id, run.state)
    session.commit()
    if finished is not None:
        finished.extend(done)


def fail_timed_out_runs(
    session: Session, dagbag: DagBag, now: datetime, finished: list[FinishedRun] | None = None
) -> list[FinishedRun]:
    """Runs still running longer than their DAG's ``dagrun_timeout`` fail, as in Airflow: their
    running task instances fail, the other unfinished ones are skipped (the mark-run-failed rule,
    so a worker still running one is fenced out by the state change). Commits."""
    from datetime import timedelta

    done: list[FinishedRun] = []
    for dag in dagbag.dags.values():
        timeout = dag.dagrun_timeout
        if not isinstance(timeout, timedelta):
            continue
        late = (
            session.execute(
                select(DagRun).where(
                    DagRun.dag_id == dag.dag_id,
                    DagRun.state == DagRunState.RUNNING.value,
                    DagRun.start_date < now - timeout,
                )
            )
            .scalars()
            .all()
        )
        for run in late:
            done.append(_fail_run(session, run, f"dagrun_timeout {timeout} exceeded", now))
    session.commit()
    if finished is not None:
        finished.extend(done)
    return done


def _fail_run(session: Session, run: DagRun, reason: str, now: datetime) -> FinishedRun:
    from rabbitrun.models import transitions

    transitions.mark_run(session, run.dag_id, run.run_id, TaskState.FAILED, now, reason)
    run.state = DagRunState.FAILED.value
    run.end_date = now
    log.warning("DAG run %s of %s failed: %s", run.run_id, run.dag_id, reason)
    return FinishedRun(run.dag_id, run.run_id, run.state)


def queued_runs_exist(session: Session) -> bool:
    """A new run to start (of a DAG that is not paused)?"""
    paused = select(DagModel.dag_id).where(DagModel.is_paused.is_(True))
    return (
        session.execute(
            select(DagRun.id).where(DagRun.state == DagRunState.QUEUED.value, DagRun.dag_id.notin_(paused)).limit(1)
        ).first()
        is not None
    )


def next_due_at(session: Session) -> datetime | None:
    """When the earliest retry or sensor reschedule falls due: the scheduler wakes up then."""
    return session.execute(
        select(func.min(TaskInstance.next_retry_at)).where(TaskInstance.state.in_(list(DUE)))
    ).scalar_one_or_none()


def due_runs(session: Session, now: datetime) -> set[tuple[str, str]]:
    """Runs with a retry or a sensor reschedule due by ``now``, to evaluate without a full pass."""
    rows = session.execute(
        select(TaskInstance.dag_id, TaskInstance.run_id)
        .distinct()
        .where(TaskInstance.state.in_(list(DUE)), TaskInstance.next_retry_at <= now)
    ).all()
    return {(dag_id, run_id) for dag_id, run_id in rows}


def state_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(TaskInstance.state, func.count()).group_by(TaskInstance.state)).all()
    return {state: int(count) for state, count in rows}
