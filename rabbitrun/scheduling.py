"""What the scheduler decides, against the metadata DB: runs to start, task
instances to queue, skip or fail, runs to finish, stuck and zombie attempts.

Synchronous and broker-free so the scheduler loop can run it in a thread and
tests can call it directly. It returns envelopes; the executor publishes them
and reports back which failed (DESIGN rule 1: QUEUED only for a confirmed
envelope, put back when the publish fails).

Several schedulers may share one PostgreSQL database: each evaluates only the
runs it could lock (``FOR UPDATE SKIP LOCKED``), creates and starts runs only
of the DAGs it could lock, counts free slots inside a lock on the pool rows,
and every queueing UPDATE is a compare-and-set on the state and try_number it
read, so no task instance is queued twice.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, delete, func, select, tuple_, update
from sqlalchemy.orm import Session

from rabbitrun import admission
from rabbitrun.authoring import DAG, DagBag, Decision, evaluate
from rabbitrun.errors import DagNotFound, Unroutable
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models import attempts, pools
from rabbitrun.models.tables import DagImportErrorRow, DagModel, DagRun, TaskInstance
from rabbitrun.protocol import TaskEnvelope
from rabbitrun.settings import Settings
from rabbitrun.states import FINISHED_TASK_STATES, DagRunState, TaskState

log = logging.getLogger("rabbitrun.scheduler")

_FAILED = {TaskState.FAILED.value, TaskState.UPSTREAM_FAILED.value}
_FINISHED = {s.value for s in FINISHED_TASK_STATES}


@dataclass(frozen=True, slots=True)
class PublishFailure:
    envelope: TaskEnvelope
    error: Exception


@dataclass(slots=True)
class PassNotes:
    """What a pass of :func:`schedule` leaves for the scheduler loop to follow up without waiting
    for the next poll: runs to evaluate again soon, and runs whose ready tasks wait for a slot
    (a finishing task frees one, so any result should re-evaluate them)."""

    again: set[tuple[str, str]] = field(default_factory=set)
    waiting: set[tuple[str, str]] = field(default_factory=set)


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

    mine = _lock_dags(session, [d for d, dag in dagbag.dags.items() if dag.schedule is not None])
    created = []
    for dag_id, dag in dagbag.dags.items():
        if dag.schedule is None or dag_id not in mine:
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


def _lock_dags(session: Session, dag_ids: Sequence[str]) -> set[str]:
    """The DAGs among ``dag_ids`` this scheduler may create and start runs of now: not paused, and
    not locked by another scheduler doing the same (PostgreSQL; SQLite has one scheduler). A DAG
    without a row yet (not synced) is not locked by anyone and counts as mine."""
    if not dag_ids:
        return set()
    rows = set(session.execute(select(DagModel.dag_id).where(DagModel.dag_id.in_(dag_ids))).scalars())
    locked = set(session.execute(
        select(DagModel.dag_id).where(DagModel.dag_id.in_(dag_ids), DagModel.is_paused.is_(False))
        .with_for_update(skip_locked=True)).scalars())
    return locked | (set(dag_ids) - rows)


def start_queued_runs(session: Session, dagbag: DagBag, settings: Settings, now: datetime) -> list[DagRun]:
    """QUEUED runs -> RUNNING with one task instance per task, oldest logical date first and at most
    ``max_active_runs`` running per DAG; a run of an unknown DAG fails. Runs of a paused DAG stay
    queued until `dags unpause`; those of a DAG another scheduler is starting runs of wait for it."""
    waiting = list(session.execute(
        select(DagRun.dag_id).where(DagRun.state == DagRunState.QUEUED.value).distinct()).scalars())
    mine = _lock_dags(session, waiting)
    # counted after the lock: another scheduler's started runs are committed by now
    runs = session.execute(select(DagRun).where(DagRun.state == DagRunState.QUEUED.value,
                                                DagRun.dag_id.in_(mine))
                           .order_by(DagRun.logical_date)).scalars().all()
    active = dict(session.execute(select(DagRun.dag_id, func.count()).where(
        DagRun.state == DagRunState.RUNNING.value).group_by(DagRun.dag_id)).all())
    started = []
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
        for task in dag.tasks:
            session.add(TaskInstance(
                dag_id=run.dag_id, task_id=task.task_id, run_id=run.run_id, map_index=-1,
                state=TaskState.NONE.value, try_number=0, max_tries=task.max_tries,
                queue=task.queue or settings.core.default_queue, priority_weight=task.priority_weight,
                pool=task.pool, pool_slots=task.pool_slots, operator=type(task).__name__,
            ))
        started.append(run)
    session.commit()
    return started


def schedule(
    session: Session, dagbag: DagBag, settings: Settings, now: datetime,
    only: Iterable[tuple[str, str]] | None = None, notes: PassNotes | None = None,
) -> list[TaskEnvelope]:
    """Evaluate running runs (all, or ``only`` these (dag_id, run_id)); queue what is ready and has a
    slot. Runs another scheduler is evaluating right now are left to it (``notes.again`` when asked
    for by ``only``); ``notes.waiting`` gets the runs whose ready tasks wait for a slot."""
    notes = notes if notes is not None else PassNotes()
    query = select(DagRun).where(DagRun.state == DagRunState.RUNNING.value)
    pairs: list[tuple[str, str]] = []
    if only is not None:
        pairs = list(only)
        if not pairs:
            return []
        query = query.where(tuple_(DagRun.dag_id, DagRun.run_id).in_(pairs))
    runs = session.execute(query.with_for_update(of=DagRun, skip_locked=True)).scalars().all()
    if pairs and len(runs) < len(pairs):
        notes.again.update(_running_elsewhere(session, set(pairs) - {(r.dag_id, r.run_id) for r in runs}))
    if not runs:
        return []
    tis_by_run = _load_tis(session, [(r.dag_id, r.run_id) for r in runs])
    ready: list[tuple[TaskInstance, DAG, DagRun]] = []
    for run in runs:
        try:
            dag = dagbag.get_dag(run.dag_id)
        except DagNotFound:
            continue  # its file may be failing to import right now; keep the run and retry later
        tis = tis_by_run.get((run.dag_id, run.run_id), [])
        ready.extend((ti, dag, run) for ti in _evaluate_run(dag, tis, now))
        _finish_run_if_done(run, dag, tis, now)
    envelopes = _queue(session, _admit(session, ready, settings, now, notes), dagbag, settings, now)
    session.commit()
    return envelopes


def _running_elsewhere(session: Session, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Of runs this pass could not lock, those still running (locked by another scheduler)."""
    if session.get_bind().dialect.name != "postgresql":
        return set()  # no row locks: a run that was not returned is no longer running
    rows = session.execute(select(DagRun.dag_id, DagRun.run_id).where(
        tuple_(DagRun.dag_id, DagRun.run_id).in_(list(pairs)), DagRun.state == DagRunState.RUNNING.value)).all()
    return {(dag_id, run_id) for dag_id, run_id in rows}


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


def _admit(
    session: Session, ready: list[tuple[TaskInstance, DAG, DagRun]], settings: Settings, now: datetime,
    notes: PassNotes,
) -> list[tuple[TaskInstance, DAG]]:
    """Pools, max_active_tasks and parallelism decide which ready rows get slots, by priority_weight.
    A row naming a pool that does not exist fails with the reason; one that waits says why."""
    if not ready:
        return []
    by_ref = {(ti.dag_id, ti.task_id, ti.run_id, ti.map_index): (ti, dag) for ti, dag, _ in ready}
    candidates = [admission.Candidate(ref, ti.dag_id, ti.pool, ti.pool_slots, ti.priority_weight,
                                      run.logical_date, ti.map_index)
                  for (ti, _, run), ref in zip(ready, by_ref, strict=True)]
    # from this lock to the commit, one scheduler at a time counts and takes slots
    sizes = pools.pool_sizes(session, lock=True)
    limits = admission.Limits(settings.core.parallelism, sizes, {dag.dag_id: dag.max_active_tasks for _, dag, _ in ready})
    decided = admission.admit(candidates, limits, _occupancy(session))
    for c in decided.unknown_pool:
        ti, _ = by_ref[c.ref]
        ti.state, ti.end_date, ti.reason = TaskState.FAILED.value, now, admission.unknown_pool_reason(ti.pool)
        log.error("%s.%s run=%s: %s", ti.dag_id, ti.task_id, ti.run_id, ti.reason)
        notes.again.add((ti.dag_id, ti.run_id))  # its downstream can be settled at once
    for c, reason in decided.waiting:
        ti, _ = by_ref[c.ref]
        if ti.state != TaskState.SCHEDULED.value:  # a re-publish keeps the reason it was re-published for
            ti.reason = reason  # unchanged values are not written again
        notes.waiting.add((ti.dag_id, ti.run_id))
    return [by_ref[c.ref] for c in decided.admitted]


def _occupancy(session: Session) -> admission.Occupancy:
    """Task instances and pool slots that QUEUED and RUNNING rows hold, in one aggregate query."""
    rows = session.execute(
        select(TaskInstance.dag_id, TaskInstance.pool, func.count(), func.sum(TaskInstance.pool_slots))
        .where(TaskInstance.state.in_(pools.OCCUPYING_STATES)).group_by(TaskInstance.dag_id, TaskInstance.pool)
    ).all()
    total, by_pool, by_dag = 0, defaultdict[str, int](int), defaultdict[str, int](int)
    for dag_id, pool, count, slots in rows:
        total += int(count)
        by_pool[pool] += int(slots or 0)
        by_dag[dag_id] += int(count)
    return admission.Occupancy(total, dict(by_pool), dict(by_dag))


def _queue(
    session: Session, ready: list[tuple[TaskInstance, DAG]], dagbag: DagBag, settings: Settings, now: datetime
) -> list[TaskEnvelope]:
    """Mark ready task instances QUEUED, a few set-based UPDATE ... RETURNING statements for
    any number of them (envelope ids are generated by the database), and build their envelopes."""
    tasks = {(ti.dag_id, ti.task_id): dag.get_task(ti.task_id) for ti, dag in ready}
    priority = {(ti.dag_id, ti.task_id, ti.run_id, ti.map_index): ti.priority_weight for ti, _ in ready}
    # keep the admission order (priority_weight, then older runs) in each group
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
            # compare-and-set on the state and try it was read with: never queued twice (scheduler HA)
            returned = session.execute(
                update(TaskInstance)
                .where(tuple_(TaskInstance.dag_id, TaskInstance.task_id, TaskInstance.run_id, TaskInstance.map_index,
                              TaskInstance.try_number, TaskInstance.state).in_(
                    [(t.dag_id, t.task_id, t.run_id, t.map_index, t.try_number, t.state) for t in chunk]))
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


def put_back(session: Session, failures: Sequence[PublishFailure], now: datetime) -> None:
    """Publishing failed: unroutable -> fail fast with the reason; otherwise back to SCHEDULED."""
    for failure in failures:
        key = failure.envelope.key
        ti = attempts.get_ti(session, key)
        if ti is None or ti.envelope_id != failure.envelope.id or ti.state != TaskState.QUEUED.value:
            continue
        if isinstance(failure.error, Unroutable):
            ti.state, ti.end_date, ti.reason = TaskState.FAILED.value, now, str(failure.error)
            log.error("%s: %s", key, failure.error)
        else:
            ti.state, ti.reason = TaskState.SCHEDULED.value, f"publish failed: {failure.error}"
            log.warning("%s: publish failed, will retry: %s", key, failure.error)
    session.commit()


def surface_stuck_queued(session: Session, settings: Settings, now: datetime) -> list[TaskEnvelope]:
    """QUEUED longer than task_queued_timeout_s: never silent. Fail it, or re-publish it."""
    cutoff = now - timedelta(seconds=settings.core.task_queued_timeout_s)
    stuck = session.execute(
        select(TaskInstance).where(TaskInstance.state == TaskState.QUEUED.value, TaskInstance.queued_at < cutoff)
    ).scalars().all()
    envelopes: list[TaskEnvelope] = []
    for ti in stuck:
        reason = (f"stuck in queued for over {settings.core.task_queued_timeout_s:g}s: no worker claimed it "
                  f"(is a worker consuming queue {ti.queue!r}?)")
        values: dict[str, Any] = {"state": TaskState.FAILED.value, "end_date": now, "reason": reason}
        if settings.core.task_queued_timeout_action == "requeue":
            values = {"state": TaskState.SCHEDULED.value, "reason": reason}
        # compare-and-set on the envelope seen: another scheduler may have handled it already
        done = session.execute(
            update(TaskInstance).where(
                TaskInstance.dag_id == ti.dag_id, TaskInstance.task_id == ti.task_id,
                TaskInstance.run_id == ti.run_id, TaskInstance.map_index == ti.map_index,
                TaskInstance.state == TaskState.QUEUED.value, TaskInstance.envelope_id == ti.envelope_id)
            .values(**values).execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
        if done:
            log.warning("%s.%s run=%s try=%s: %s", ti.dag_id, ti.task_id, ti.run_id, ti.try_number, reason)
    session.commit()
    return envelopes


def fail_zombies(session: Session, settings: Settings, now: datetime) -> list[tuple[str, str]]:
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
