"""What the scheduler decides, against the metadata DB: runs to start, task
instances to queue, skip or fail, runs to finish, stuck and zombie attempts.

Synchronous and broker-free so the scheduler loop can run it in a thread and
tests can call it directly. It returns envelopes; the executor publishes them
and reports back which failed (DESIGN rule 1: QUEUED only for a confirmed
envelope, put back when the publish fails).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, delete, func, select, tuple_, update
from sqlalchemy.orm import Session

from rabbitrun.authoring import DAG, DagBag, Decision, evaluate
from rabbitrun.errors import DagNotFound, Unroutable
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models import attempts
from rabbitrun.models.tables import DagImportErrorRow, DagModel, DagRun, TaskInstance
from rabbitrun.protocol import TaskEnvelope
from rabbitrun.settings import Settings
from rabbitrun.states import FINISHED_TASK_STATES, DagRunState, TaskState

log = logging.getLogger("rabbitrun.scheduler")

_FAILED = {TaskState.FAILED.value, TaskState.UPSTREAM_FAILED.value}
_FINISHED = {s.value for s in FINISHED_TASK_STATES}


#: Told of each attempt the scheduler ends itself: (key, new state, cause), e.g. for metrics.
OutcomeHook = Callable[[TaskInstanceKey, str, str], None]


def _ignore(_key: TaskInstanceKey, _state: str, _cause: str) -> None:
    """The default OutcomeHook."""


@dataclass(frozen=True, slots=True)
class PublishFailure:
    envelope: TaskEnvelope
    error: Exception


def sync_dags(session: Session, dagbag: DagBag, now: datetime) -> None:
    """Mirror parsed DAGs and import errors into the DB, for `dags list` and triggering."""
    for dag_id, dag in dagbag.dags.items():
        row = session.get(DagModel, dag_id)
        if row is None:
            session.add(DagModel(dag_id=dag_id, fileloc=dag.fileloc, description=dag.description or None,
                                 last_parsed_at=now))
        else:
            row.fileloc, row.last_parsed_at = dag.fileloc, now
    session.execute(delete(DagImportErrorRow))
    for ref, err in dagbag.import_errors.items():
        session.add(DagImportErrorRow(filename=ref, lineno=err.lineno, exception=err.exception,
                                      stacktrace=err.traceback, timestamp=now))
    session.commit()


def create_scheduled_runs(session: Session, dagbag: DagBag, now: datetime) -> list[DagRun]:
    """Create the runs whose data interval has ended (cron / preset / timedelta / @once, catchup)."""
    from rabbitrun import timetables

    paused = set(session.execute(select(DagModel.dag_id).where(DagModel.is_paused.is_(True))).scalars())
    created = []
    for dag_id, dag in dagbag.dags.items():
        if dag.schedule is None or dag_id in paused:
            continue
        last_end, has_runs = session.execute(
            select(func.max(DagRun.data_interval_end), func.count()).where(
                DagRun.dag_id == dag_id, DagRun.run_type.in_(("scheduled", "backfill")))).one()
        for interval in timetables.due(dag.schedule, dag.start_date, dag.end_date, last_end, now, dag.catchup,
                                       bool(has_runs)):
            created.append(create_run(session, dag_id, f"scheduled__{interval.start.isoformat()}", {}, now,
                                      run_type="scheduled", interval=interval, commit=False))
    session.commit()
    return created


def start_queued_runs(session: Session, dagbag: DagBag, settings: Settings, now: datetime) -> list[DagRun]:
    """QUEUED runs -> RUNNING with one task instance per task, oldest logical date first and at most
    ``max_active_runs`` running per DAG; a run of an unknown DAG fails."""
    runs = session.execute(select(DagRun).where(DagRun.state == DagRunState.QUEUED.value)
                           .order_by(DagRun.logical_date)).scalars().all()
    paused = set(session.execute(select(DagModel.dag_id).where(DagModel.is_paused.is_(True))).scalars())
    active = dict(session.execute(select(DagRun.dag_id, func.count()).where(
        DagRun.state == DagRunState.RUNNING.value).group_by(DagRun.dag_id)).all())
    started = []
    for run in runs:
        if run.dag_id in paused:
            continue  # stays queued until `dags unpause`
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
        for task in dag.tasks:
            session.add(TaskInstance(
                dag_id=run.dag_id, task_id=task.task_id, run_id=run.run_id, map_index=-1,
                state=TaskState.NONE.value, try_number=0, max_tries=task.max_tries,
                queue=task.queue or settings.core.default_queue, priority_weight=task.priority_weight,
                operator=type(task).__name__,
            ))
        started.append(run)
    session.commit()
    return started


def schedule(
    session: Session, dagbag: DagBag, settings: Settings, now: datetime,
    only: Iterable[tuple[str, str]] | None = None,
) -> list[TaskEnvelope]:
    """Evaluate running runs (all, or ``only`` these (dag_id, run_id)); queue what is ready."""
    query = select(DagRun).where(DagRun.state == DagRunState.RUNNING.value)
    if only is not None:
        pairs = list(only)
        if not pairs:
            return []
        query = query.where(tuple_(DagRun.dag_id, DagRun.run_id).in_(pairs))
    runs = session.execute(query).scalars().all()
    if not runs:
        return []
    tis_by_run = _load_tis(session, [(r.dag_id, r.run_id) for r in runs])
    ready: list[tuple[TaskInstance, DAG]] = []
    for run in runs:
        try:
            dag = dagbag.get_dag(run.dag_id)
        except DagNotFound:
            continue  # its file may be failing to import right now; keep the run and retry later
        tis = tis_by_run.get((run.dag_id, run.run_id), [])
        ready.extend((ti, dag) for ti in _evaluate_run(dag, tis, now))
        _finish_run_if_done(run, dag, tis, now)
    envelopes = _queue(session, _apply_parallelism(session, ready, settings), dagbag, settings, now)
    session.commit()
    return envelopes


def _load_tis(session: Session, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[TaskInstance]]:
    out: dict[tuple[str, str], list[TaskInstance]] = defaultdict(list)
    for chunk_start in range(0, len(pairs), 500):
        chunk = pairs[chunk_start:chunk_start + 500]
        rows = session.execute(
            select(TaskInstance).where(tuple_(TaskInstance.dag_id, TaskInstance.run_id).in_(chunk))
        ).scalars()
        for ti in rows:
            out[(ti.dag_id, ti.run_id)].append(ti)
    return out


def _evaluate_run(dag: DAG, tis: list[TaskInstance], now: datetime) -> list[TaskInstance]:
    """One pass in topological order settles skips and upstream failures; returns ready TIs."""
    by_task = {ti.task_id: ti for ti in tis if ti.map_index == -1}
    ready = []
    for task in dag.topological_sort():
        ti = by_task.get(task.task_id)
        if ti is None:
            continue
        if ti.state == TaskState.SCHEDULED.value:  # its publish failed earlier: send it again
            ready.append(ti)
            continue
        if ti.state == TaskState.UP_FOR_RETRY.value:
            if ti.next_retry_at is None or ti.next_retry_at <= now:
                ready.append(ti)
            continue
        if ti.state != TaskState.NONE.value:
            continue
        upstream = [TaskState(by_task[u].state) for u in task.upstream_task_ids if u in by_task]
        decision = evaluate(task.trigger_rule, upstream)
        if decision == Decision.RUN:
            ready.append(ti)
        elif decision == Decision.SKIP:
            ti.state, ti.start_date, ti.end_date, ti.duration = TaskState.SKIPPED.value, now, now, 0.0
        elif decision == Decision.UPSTREAM_FAILED:
            ti.state, ti.end_date = TaskState.UPSTREAM_FAILED.value, now
            ti.reason = "an upstream task failed"
    return ready


def _finish_run_if_done(run: DagRun, dag: DAG, tis: list[TaskInstance], now: datetime) -> None:
    """Airflow's rule: a finished run failed when any leaf failed or is upstream_failed."""
    if any(ti.state not in _FINISHED for ti in tis):
        return  # (a DAG without tasks finishes at once, as in Airflow)
    leaves = {t.task_id for t in dag.leaves}
    failed = any(ti.state in _FAILED for ti in tis if ti.task_id in leaves)
    run.state = (DagRunState.FAILED if failed else DagRunState.SUCCESS).value
    run.end_date = now
    log.info("DAG run %s of %s finished: %s", run.run_id, run.dag_id, run.state)


def _apply_parallelism(
    session: Session, ready: list[tuple[TaskInstance, DAG]], settings: Settings
) -> list[tuple[TaskInstance, DAG]]:
    ready.sort(key=lambda pair: -pair[0].priority_weight)  # priority_weight decides who gets slots
    limit = settings.core.parallelism
    if limit <= 0:
        return ready
    active = session.execute(
        select(func.count()).select_from(TaskInstance).where(
            TaskInstance.state.in_([TaskState.QUEUED.value, TaskState.RUNNING.value]))
    ).scalar_one()
    return ready[:max(0, limit - active)]


def _queue(
    session: Session, ready: list[tuple[TaskInstance, DAG]], dagbag: DagBag, settings: Settings, now: datetime
) -> list[TaskEnvelope]:
    """Mark ready task instances QUEUED, a few set-based UPDATE ... RETURNING statements for
    any number of them (envelope ids are generated by the database), and build their envelopes."""
    tasks = {(ti.dag_id, ti.task_id): dag.get_task(ti.task_id) for ti, dag in ready}
    priority = {(ti.dag_id, ti.task_id, ti.run_id, ti.map_index): ti.priority_weight for ti, _ in ready}
    groups: dict[tuple[bool, str], list[TaskInstance]] = defaultdict(list)
    for ti, _ in ready:
        task = tasks[(ti.dag_id, ti.task_id)]
        groups[(ti.state == TaskState.SCHEDULED.value, task.queue or settings.core.default_queue)].append(ti)
    envelopes = []
    new_id = _random_id(session)
    for (republish, queue), tis in groups.items():
        for start in range(0, len(tis), 500):
            chunk = tis[start:start + 500]
            values: dict[str, Any] = {
                "state": TaskState.QUEUED.value, "queued_at": now, "queue": queue, "envelope_id": new_id,
                "hostname": None, "pid": None, "start_date": None, "end_date": None, "duration": None}
            if not republish:  # a re-published SCHEDULED task keeps its try and the reason it was re-published for
                values.update(try_number=TaskInstance.try_number + 1, reason=None)
            returned = session.execute(
                update(TaskInstance)
                .where(tuple_(TaskInstance.dag_id, TaskInstance.task_id, TaskInstance.run_id,
                              TaskInstance.map_index).in_([(t.dag_id, t.task_id, t.run_id, t.map_index)
                                                           for t in chunk]))
                .values(**values)
                .returning(TaskInstance.dag_id, TaskInstance.task_id, TaskInstance.run_id, TaskInstance.map_index,
                           TaskInstance.try_number, TaskInstance.envelope_id)
                .execution_options(synchronize_session=False)
            ).all()
            for dag_id, task_id, run_id, map_index, try_number, envelope_id in returned:
                task = tasks[(dag_id, task_id)]
                timeout = task.execution_timeout.total_seconds() if task.execution_timeout else None
                envelopes.append(TaskEnvelope(
                    id=envelope_id, key=TaskInstanceKey(dag_id, task_id, run_id, map_index, try_number),
                    dag_file=dagbag.file_ref(dag_id), queue=queue,
                    priority=priority[(dag_id, task_id, run_id, map_index)],
                    execution_timeout_s=timeout, enqueued_at=now))
    envelopes.sort(key=lambda e: -e.priority)  # priority_weight decides who is published first
    return envelopes


def _random_id(session: Session) -> Any:
    """A fresh 32-hex-digit id per row, computed by the database in a set-based UPDATE."""
    if session.get_bind().dialect.name == "postgresql":
        return func.md5(func.random().cast(String) + func.clock_timestamp().cast(String))
    return func.lower(func.hex(func.randomblob(16)))


def put_back(session: Session, failures: Sequence[PublishFailure], now: datetime,
             on_outcome: OutcomeHook = _ignore) -> None:
    """Publishing failed: unroutable -> fail fast with the reason; otherwise back to SCHEDULED."""
    for failure in failures:
        key = failure.envelope.key
        ti = attempts.get_ti(session, key)
        if ti is None or ti.envelope_id != failure.envelope.id or ti.state != TaskState.QUEUED.value:
            continue
        if isinstance(failure.error, Unroutable):
            ti.state, ti.end_date, ti.reason = TaskState.FAILED.value, now, str(failure.error)
            log.error("%s: %s", key, failure.error)
            on_outcome(key, ti.state, "unroutable")
        else:
            ti.state, ti.reason = TaskState.SCHEDULED.value, f"publish failed: {failure.error}"
            log.warning("%s: publish failed, will retry: %s", key, failure.error)
    session.commit()


def surface_stuck_queued(session: Session, settings: Settings, now: datetime,
                         on_outcome: OutcomeHook = _ignore) -> list[TaskEnvelope]:
    """QUEUED longer than task_queued_timeout_s: never silent. Fail it, or re-publish it."""
    cutoff = now - timedelta(seconds=settings.core.task_queued_timeout_s)
    stuck = session.execute(
        select(TaskInstance).where(TaskInstance.state == TaskState.QUEUED.value, TaskInstance.queued_at < cutoff)
    ).scalars().all()
    envelopes = []
    for ti in stuck:
        reason = (f"stuck in queued for over {settings.core.task_queued_timeout_s:g}s: no worker claimed it "
                  f"(is a worker consuming queue {ti.queue!r}?)")
        log.warning("%s.%s run=%s try=%s: %s", ti.dag_id, ti.task_id, ti.run_id, ti.try_number, reason)
        if settings.core.task_queued_timeout_action == "requeue":
            ti.state, ti.reason = TaskState.SCHEDULED.value, reason
        else:
            ti.state, ti.end_date, ti.reason = TaskState.FAILED.value, now, reason
        on_outcome(TaskInstanceKey(ti.dag_id, ti.task_id, ti.run_id, ti.map_index, ti.try_number), ti.state,
                   "stuck_in_queued")
    session.commit()
    return envelopes


def fail_zombies(session: Session, settings: Settings, now: datetime,
                 on_outcome: OutcomeHook = _ignore) -> list[tuple[str, str]]:
    """RUNNING attempts whose worker stopped heartbeating: fail or retry them."""
    cutoff = now - timedelta(seconds=settings.scheduler.zombie_threshold_s)
    zombies = session.execute(
        select(TaskInstance).where(TaskInstance.state == TaskState.RUNNING.value,
                                   TaskInstance.last_heartbeat_at < cutoff)
    ).scalars().all()
    touched = []
    for ti in zombies:
        key = TaskInstanceKey(ti.dag_id, ti.task_id, ti.run_id, ti.map_index, ti.try_number)
        reason = (f"zombie: no heartbeat from {ti.hostname} (pid {ti.pid}) for over "
                  f"{settings.scheduler.zombie_threshold_s:g}s")
        outcome = attempts.failure_outcome(ti.try_number, ti.max_tries, None, reason, now)
        if attempts.finish(session, key, outcome):
            log.warning("%s: %s -> %s", key, reason, outcome.state)
            touched.append((ti.dag_id, ti.run_id))
            on_outcome(key, outcome.state.value, "zombie")
    return touched


def create_run(
    session: Session, dag_id: str, run_id: str, conf: dict[str, object], now: datetime, run_type: str = "manual",
    interval: Any = None, commit: bool = True,
) -> DagRun:
    """A QUEUED run; scheduled and backfill runs carry their data interval (logical_date = its start)."""
    start, end = (interval.start, interval.end) if interval is not None else (now, now)
    run = DagRun(dag_id=dag_id, run_id=run_id, state=DagRunState.QUEUED.value, run_type=run_type,
                 logical_date=start, conf=json.dumps(conf), queued_at=now, data_interval_start=start,
                 data_interval_end=end)
    session.add(run)
    if commit:
        session.commit()
    return run


def state_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(TaskInstance.state, func.count()).group_by(TaskInstance.state)).all()
    return {state: int(count) for state, count in rows}


def queued_runs_exist(session: Session) -> bool:
    """A new run to start (of a DAG that is not paused)?"""
    paused = select(DagModel.dag_id).where(DagModel.is_paused.is_(True))
    return session.execute(select(DagRun.id).where(DagRun.state == DagRunState.QUEUED.value,
                                                   DagRun.dag_id.notin_(paused)).limit(1)).first() is not None


def finish_runs_if_done(session: Session, dagbag: DagBag, runs: Iterable[tuple[str, str]], now: datetime) -> None:
    """Cheap completion check for runs whose last result was a leaf: two aggregate queries per run."""
    for dag_id, run_id in runs:
        run = session.execute(
            select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id,
                                 DagRun.state == DagRunState.RUNNING.value)).scalar_one_or_none()
        if run is None:
            continue
        mine = (TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        unfinished = session.execute(select(func.count()).select_from(TaskInstance).where(
            *mine, TaskInstance.state.notin_(list(_FINISHED)))).scalar_one()
        if unfinished:
            continue
        try:
            leaves = [t.task_id for t in dagbag.get_dag(dag_id).leaves]
        except DagNotFound:
            continue
        failed = session.execute(select(func.count()).select_from(TaskInstance).where(
            *mine, TaskInstance.task_id.in_(leaves), TaskInstance.state.in_(list(_FAILED)))).scalar_one()
        run.state = (DagRunState.FAILED if failed else DagRunState.SUCCESS).value
        run.end_date = now
        log.info("DAG run %s of %s finished: %s", run.run_id, run.dag_id, run.state)
    session.commit()
