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

import logging
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Integer, String, Table, bindparam, case, delete, func, insert, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from rabbitrun.authoring import DAG, BaseOperator, DagBag, Decision, MappedOperator, evaluate
from rabbitrun.errors import DagError, DagNotFound, MappingError, Unroutable, XComError
from rabbitrun.executor import PublishFailure
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models import attempts, mapping, pools, runs, xcom
from rabbitrun.models.tables import DagImportErrorRow, DagModel, DagRun, TaskInstance
from rabbitrun.protocol import TaskEnvelope
from rabbitrun.scheduler import admission
from rabbitrun.settings import Settings
from rabbitrun.states import DUE_STATES, FINISHED_TASK_STATES, DagRunState, TaskState

log = logging.getLogger("rabbitrun.scheduler")

_FAILED = {TaskState.FAILED.value, TaskState.UPSTREAM_FAILED.value}
_FINISHED = {s.value for s in FINISHED_TASK_STATES}
_UNFINISHED = sorted(s.value for s in TaskState if s not in FINISHED_TASK_STATES)  # IN, not NOT IN: index ranges
_DUE = {s.value for s in DUE_STATES}
#: queued again with the same try_number: a failed publish, or a sensor's next poke
_KEEP_TRY = {TaskState.SCHEDULED.value, TaskState.UP_FOR_RESCHEDULE.value}


@dataclass(frozen=True, slots=True)
class FinishedRun:
    """A run this pass finished, for the DAG's on_success/on_failure callback."""

    dag_id: str
    run_id: str
    state: str


#: Turns a ready mapped placeholder into its ready instances (see _expander).
Expander = Callable[[TaskInstance, MappedOperator], list[TaskInstance]]


#: Told of each attempt the scheduler ends itself: (key, new state, cause), e.g. for metrics.
OutcomeHook = Callable[[TaskInstanceKey, str, str], None]


def _ignore(_key: TaskInstanceKey, _state: str, _cause: str) -> None:
    """The default OutcomeHook."""


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
    from rabbitrun.authoring import timetables

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
            created.append(runs.create_run(session, dag_id, f"scheduled__{interval.start.isoformat()}", {}, now,
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


ANALYZE_AFTER_ROWS = 2000  # task instances inserted at once (PostgreSQL)


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
        rows.extend(dict(
            dag_id=run.dag_id, task_id=task.task_id, run_id=run.run_id, map_index=-1,
            state=TaskState.NONE.value, try_number=0, max_tries=task.max_tries,
            queue=task.queue or settings.core.default_queue, priority_weight=task.priority_weight,
            pool=task.pool, pool_slots=task.pool_slots, operator=type(task).__name__,
        ) for task in dag.tasks)
        started.append(run)
    session.flush()  # the runs' new state first; then their task instances as multi-row INSERTs
    for chunk_start in range(0, len(rows), 1000):  # no ORM unit of work: 10,000 rows in ~0.2 s, not ~0.7 s
        session.execute(insert(TaskInstance), rows[chunk_start:chunk_start + 1000])
    if len(rows) >= ANALYZE_AFTER_ROWS and session.get_bind().dialect.name == "postgresql":
        # a bulk load: fresh statistics before this pass queues the rows. With the table's
        # statistics from before, the planner joins the queueing UPDATE through the (dag_id,
        # run_id) index and scans the whole run once per row (10,000 rows: 2.5 s instead of 0.3 s)
        session.execute(text("ANALYZE task_instance"))
    session.commit()
    return started


def schedule(
    session: Session, dagbag: DagBag, settings: Settings, now: datetime,
    only: Iterable[tuple[str, str]] | None = None, notes: PassNotes | None = None,
    finished: list[FinishedRun] | None = None,
) -> list[TaskEnvelope]:
    """Evaluate running runs (all, or ``only`` these (dag_id, run_id)); queue what is ready and has a
    slot. Runs another scheduler is evaluating right now are left to it (``notes.again`` when asked
    for by ``only``); ``notes.waiting`` gets the runs whose ready tasks wait for a slot. Runs this
    pass finishes are appended to ``finished`` once committed."""
    notes = notes if notes is not None else PassNotes()
    query = select(DagRun).where(DagRun.state == DagRunState.RUNNING.value)
    pairs: list[tuple[str, str]] = []
    if only is not None:
        pairs = list(only)
        if not pairs:
            return []
        query = query.where(tuple_(DagRun.dag_id, DagRun.run_id).in_(pairs))
    else:  # a full pass: a run that only waits for results has nothing to evaluate
        query = query.where(tuple_(DagRun.dag_id, DagRun.run_id).notin_(_waiting_for_results()))
    runs = session.execute(query.with_for_update(of=DagRun, skip_locked=True)).scalars().all()
    if pairs and len(runs) < len(pairs):
        notes.again.update(_running_elsewhere(session, set(pairs) - {(r.dag_id, r.run_id) for r in runs}))
    if not runs:
        return []
    tis_by_run = _load_tis(session, [(r.dag_id, r.run_id) for r in runs])
    expand = _expander(session, settings, now)
    ready: list[tuple[TaskInstance, DAG, DagRun]] = []
    done: list[FinishedRun] = []
    for run in runs:
        try:
            dag = dagbag.get_dag(run.dag_id)
        except DagNotFound:
            continue  # its file may be failing to import right now; keep the run and retry later
        tis = tis_by_run.get((run.dag_id, run.run_id), [])
        ready.extend((ti, dag, run) for ti in _evaluate_run(dag, tis, now, expand))
        _finish_run_if_done(run, dag, tis, now, done)
    envelopes = _queue(session, _admit(session, ready, settings, now, notes), dagbag, settings, now)
    session.commit()
    if finished is not None:
        finished.extend(done)
    return envelopes


def _waiting_for_results() -> Any:
    """Runs whose unfinished task instances are all QUEUED or RUNNING: nothing in them can become
    ready, or finish the run, until a result arrives, and a result wakes the scheduler for exactly
    that run. The periodic full pass skips them instead of loading every task instance of every
    busy run each poll (10,000 queued task instances cost it ~0.1 s of ORM work per second).
    Zombies and tasks stuck in queued are found by their own queries, which change a state first."""
    active = (TaskState.QUEUED.value, TaskState.RUNNING.value)
    return (select(TaskInstance.dag_id, TaskInstance.run_id)
            .where(TaskInstance.state.notin_(list(_FINISHED)))
            .group_by(TaskInstance.dag_id, TaskInstance.run_id)
            .having(func.sum(case((TaskInstance.state.in_(active), 0), else_=1)) == 0))


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


def _evaluate_run(dag: DAG, tis: list[TaskInstance], now: datetime, expand: Expander) -> list[TaskInstance]:
    """One pass in topological order settles skips and upstream failures; returns ready TIs.

    A task's upstream states are those of all instances of its upstream tasks
    (every mapped instance counts); a ready mapped placeholder is ``expand``-ed
    into its instances instead of being queued itself.
    """
    by_task: dict[str, list[TaskInstance]] = defaultdict(list)
    for ti in tis:
        by_task[ti.task_id].append(ti)
    decisions: dict[str, Decision] = {}
    ready = []
    for task, ti in _instances_in_order(dag, by_task):
        if ti.state == TaskState.SCHEDULED.value:  # its publish failed earlier: send it again
            ready.append(ti)
            continue
        if ti.state in _DUE:  # a retry, or a sensor's next poke
            if ti.next_retry_at is None or ti.next_retry_at <= now:
                ready.append(ti)
            continue
        if ti.state != TaskState.NONE.value:
            continue
        decision = decisions.get(task.task_id)
        if decision is None:  # the same for every instance of a task: evaluated once
            upstream = [TaskState(u.state) for up in task.upstream_task_ids for u in by_task.get(up, ())]
            decision = decisions[task.task_id] = evaluate(task.trigger_rule, upstream)
        if decision == Decision.RUN and isinstance(task, MappedOperator) and ti.map_index < 0:
            instances = expand(ti, task)
            if instances:
                by_task[task.task_id] = instances
            ready.extend(instances)
        elif decision == Decision.RUN:
            ready.append(ti)
        elif decision == Decision.SKIP:
            ti.state, ti.start_date, ti.end_date, ti.duration = TaskState.SKIPPED.value, now, now, 0.0
        elif decision == Decision.UPSTREAM_FAILED:
            ti.state, ti.end_date = TaskState.UPSTREAM_FAILED.value, now
            ti.reason = "an upstream task failed"
    return ready


def _instances_in_order(
    dag: DAG, by_task: dict[str, list[TaskInstance]]
) -> Iterator[tuple[BaseOperator, TaskInstance]]:
    """Every task instance, tasks in topological order, the instances of a mapped task together."""
    for task in dag.topological_sort():
        for ti in list(by_task.get(task.task_id, ())):
            yield task, ti


def _expander(session: Session, settings: Settings, now: datetime) -> Expander:
    """What a ready mapped placeholder becomes: its instances (all ready), or skipped when there is
    nothing to map over, or failed with the reason when its input is not a list or too long."""
    backends: list[xcom.XComBackend] = []

    def expand(ti: TaskInstance, task: MappedOperator) -> list[TaskInstance]:
        if not backends:
            backends.append(xcom.load_backend(settings.core.xcom_backend, settings))
        try:
            length = mapping.map_length(session, task, ti.dag_id, ti.run_id,
                                        max_length=settings.core.max_map_length, backend=backends[0])
        except (MappingError, XComError) as exc:
            ti.state, ti.end_date, ti.reason = TaskState.FAILED.value, now, str(exc)
            log.error("%s.%s run=%s: %s", ti.dag_id, ti.task_id, ti.run_id, exc)
            return []
        if length == 0:
            ti.state, ti.start_date, ti.end_date, ti.duration = TaskState.SKIPPED.value, now, now, 0.0
            ti.reason = "mapped over an empty list"
            return []
        return mapping.expand(session, ti, length)

    return expand


def _finish_run_if_done(run: DagRun, dag: DAG, tis: list[TaskInstance], now: datetime,
                        done: list[FinishedRun]) -> None:
    """Airflow's rule: a finished run failed when any leaf failed or is upstream_failed."""
    if any(ti.state not in _FINISHED for ti in tis):
        return  # (a DAG without tasks finishes at once, as in Airflow)
    leaves = {t.task_id for t in dag.leaves}
    failed = any(ti.state in _FAILED for ti in tis if ti.task_id in leaves)
    run.state = (DagRunState.FAILED if failed else DagRunState.SUCCESS).value
    run.end_date = now
    done.append(FinishedRun(run.dag_id, run.run_id, run.state))
    log.info("DAG run %s of %s finished: %s", run.run_id, run.dag_id, run.state)


def _admit(
    session: Session, ready: list[tuple[TaskInstance, DAG, DagRun]], settings: Settings, now: datetime,
    notes: PassNotes,
) -> list[tuple[TaskInstance, DAG]]:
    """Pools, max_active_tasks and parallelism decide which ready rows get slots, by priority_weight.
    A row naming a pool that does not exist fails with the reason; one that waits says why."""
    if not ready:
        return []
    by_ref: dict[Hashable, tuple[TaskInstance, DAG]] = {
        (ti.dag_id, ti.task_id, ti.run_id, ti.map_index): (ti, dag) for ti, dag, _ in ready}
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
        groups[(ti.state in _KEEP_TRY, task.queue or settings.core.default_queue)].append(ti)
    envelopes = []
    dialect = session.get_bind().dialect.name
    for (keep_try, queue), tis in groups.items():
        for start in range(0, len(tis), 500):
            chunk = tis[start:start + 500]
            read = [(t.dag_id, t.task_id, t.run_id, t.map_index, t.try_number, t.state) for t in chunk]
            returned = cast(list[tuple[str, str, str, int, int, str | None]], session.execute(
                _queue_statement(dialect, keep_try),
                {"q_now": now, "q_queue": queue, **_read_as_params(dialect, read)}).all())
            for dag_id, task_id, run_id, map_index, try_number, envelope_id in returned:
                assert envelope_id is not None  # set by this very UPDATE
                envelopes.append(_envelope(
                    envelope_id, TaskInstanceKey(dag_id, task_id, run_id, map_index, try_number),
                    tasks[(dag_id, task_id)], dagbag, queue, priority[(dag_id, task_id, run_id, map_index)], now))
    envelopes.sort(key=lambda e: -e.priority)  # priority_weight decides who is published first
    return envelopes


_TI_TABLE = cast(Table, TaskInstance.__table__)
_READ_AS = ("dag_id", "task_id", "run_id", "map_index", "try_number", "state")
_READ_AS_TYPES = (String, String, String, Integer, Integer, String)
_QUEUE_STATEMENTS: dict[tuple[str, bool], Any] = {}


def _queue_statement(dialect: str, keep_try: bool) -> Any:
    """The UPDATE ... RETURNING that queues ready rows, built once per dialect and try rule (its
    values and rows are parameters): building it per pass through the ORM cost each pass ~1 ms.

    A compare-and-set on the state and try each row was read with: never queued twice (scheduler
    HA). PostgreSQL joins the rows, sent as six arrays, on the primary key; a row-value IN list of
    500 is planned there as a 500-way OR over every row of the run (80 ms per 500 rows of a
    10,000-task run; issue 6, W6). SQLite takes the IN list through its index."""
    statement = _QUEUE_STATEMENTS.get((dialect, keep_try))
    if statement is not None:
        return statement
    ti = _TI_TABLE
    values: dict[str, Any] = {
        "state": TaskState.QUEUED.value, "queued_at": bindparam("q_now"), "queue": bindparam("q_queue"),
        "hostname": None, "pid": None, "start_date": None, "end_date": None, "duration": None,
        "envelope_id": _random_id(dialect)}
    if not keep_try:  # re-published SCHEDULED and rescheduled sensors keep their try (and reason)
        values.update(try_number=ti.c.try_number + 1, reason=None)
    if dialect == "postgresql":
        read = func.unnest(*(bindparam(f"read_{name}", type_=ARRAY(kind)) for name, kind in
                             zip(_READ_AS, _READ_AS_TYPES, strict=True))
                           ).table_valued(*_READ_AS).render_derived(name="read_as")
        match = [ti.c[name] == read.c[name] for name in _READ_AS]
    else:
        match = [tuple_(*(ti.c[name] for name in _READ_AS)).in_(bindparam("read_rows", expanding=True))]
    statement = _QUEUE_STATEMENTS[(dialect, keep_try)] = (
        update(ti).where(*match).values(values)
        .returning(ti.c.dag_id, ti.c.task_id, ti.c.run_id, ti.c.map_index, ti.c.try_number, ti.c.envelope_id))
    return statement


def _read_as_params(dialect: str, rows: Sequence[tuple[str, str, str, int, int, str | None]]) -> dict[str, Any]:
    if dialect == "postgresql":
        return {f"read_{name}": [row[i] for row in rows] for i, name in enumerate(_READ_AS)}
    return {"read_rows": rows}


def _envelope(envelope_id: str, key: TaskInstanceKey, task: BaseOperator, dagbag: DagBag, queue: str, priority: int,
              enqueued_at: datetime) -> TaskEnvelope:
    timeout = task.execution_timeout.total_seconds() if task.execution_timeout else None
    return TaskEnvelope(id=envelope_id, key=key, dag_file=dagbag.file_ref(key.dag_id), queue=queue,
                        priority=priority, execution_timeout_s=timeout, enqueued_at=enqueued_at,
                        retry_delay_s=task.retry_delay_for(key.try_number).total_seconds())


def queued_envelopes(session: Session, dagbag: DagBag, now: datetime) -> list[TaskEnvelope]:
    """The envelopes of every QUEUED task instance, rebuilt as they were (same id and try).

    A scheduler marks task instances QUEUED in the transaction that gives them an
    envelope id, then publishes; if it died before the broker confirmed, no
    message exists and nothing would ever run them. The DB cannot tell those from
    confirmed ones, so a starting scheduler republishes all of them: a duplicate
    of a delivered envelope loses the claim (compare-and-set) and is acked unrun.
    """
    envelopes = []
    for ti in session.execute(select(TaskInstance).where(TaskInstance.state == TaskState.QUEUED.value,
                                                         TaskInstance.envelope_id.is_not(None))).scalars():
        try:
            task = dagbag.get_dag(ti.dag_id).get_task(ti.task_id)
        except DagError:  # not importable right now: surface_stuck_queued reports it in time
            continue
        key = TaskInstanceKey(ti.dag_id, ti.task_id, ti.run_id, ti.map_index, ti.try_number)
        envelopes.append(_envelope(str(ti.envelope_id), key, task, dagbag, ti.queue, ti.priority_weight,
                                   ti.queued_at or now))
    envelopes.sort(key=lambda e: -e.priority)
    return envelopes


def _random_id(dialect: str) -> Any:
    """A fresh 32-hex-digit id per row, computed by the database in a set-based UPDATE."""
    if dialect == "postgresql":
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
            attempts.record_attempt(session, key, ti.state, None, now, None, None, ti.reason)  # the try's history
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
            key = TaskInstanceKey(ti.dag_id, ti.task_id, ti.run_id, ti.map_index, ti.try_number)
            log.warning("%s.%s run=%s try=%s: %s", ti.dag_id, ti.task_id, ti.run_id, ti.try_number, reason)
            if values["state"] == TaskState.FAILED.value:  # the try ended: its history row says how
                attempts.record_attempt(session, key, values["state"], None, now, None, None, reason)
            on_outcome(key, values["state"], "stuck_in_queued")
    session.commit()
    return envelopes


def fail_zombies(session: Session, dagbag: DagBag, settings: Settings, now: datetime,
                 on_outcome: OutcomeHook = _ignore) -> list[tuple[str, str]]:
    """RUNNING attempts whose worker stopped heartbeating: fail or retry them (after the task's
    retry_delay, as for any other failure)."""
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
        outcome = attempts.failure_outcome(ti.try_number, ti.max_tries, _retry_delay(dagbag, key), reason, now)
        if attempts.finish(session, key, outcome):
            log.warning("%s: %s -> %s", key, reason, outcome.state)
            touched.append((ti.dag_id, ti.run_id))
            on_outcome(key, outcome.state.value, "zombie")
    return touched


def _retry_delay(dagbag: DagBag, key: TaskInstanceKey) -> timedelta:
    """The task's delay before this try's retry; none when its DAG cannot be loaded right now."""
    try:
        return dagbag.get_dag(key.dag_id).get_task(key.task_id).retry_delay_for(key.try_number)
    except DagError:  # DagNotFound, TaskNotFound
        return timedelta(0)


def state_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(TaskInstance.state, func.count()).group_by(TaskInstance.state)).all()
    return {state: int(count) for state, count in rows}


def queued_runs_exist(session: Session) -> bool:
    """A new run to start (of a DAG that is not paused)?"""
    paused = select(DagModel.dag_id).where(DagModel.is_paused.is_(True))
    return session.execute(select(DagRun.id).where(DagRun.state == DagRunState.QUEUED.value,
                                                   DagRun.dag_id.notin_(paused)).limit(1)).first() is not None


def finish_runs_if_done(session: Session, dagbag: DagBag, runs: Iterable[tuple[str, str]], now: datetime,
                        finished: list[FinishedRun] | None = None) -> None:
    """Cheap completion check for runs whose last result was a leaf: an index probe for any
    unfinished task instance, and once there is none, a count of failed leaves."""
    done: list[FinishedRun] = []
    for dag_id, run_id in runs:
        run = session.execute(
            select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id,
                                 DagRun.state == DagRunState.RUNNING.value)).scalar_one_or_none()
        if run is None:
            continue
        mine = (TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        if session.execute(select(TaskInstance.task_id).where(*mine, TaskInstance.state.in_(_UNFINISHED))
                           .limit(1)).first() is not None:
            continue  # the first unfinished one found in the (dag_id, run_id, state) index answers it
        try:
            leaves = [t.task_id for t in dagbag.get_dag(dag_id).leaves]
        except DagNotFound:
            continue
        failed = session.execute(select(func.count()).select_from(TaskInstance).where(
            *mine, TaskInstance.task_id.in_(leaves), TaskInstance.state.in_(list(_FAILED)))).scalar_one()
        run.state = (DagRunState.FAILED if failed else DagRunState.SUCCESS).value
        run.end_date = now
        done.append(FinishedRun(run.dag_id, run.run_id, run.state))
        log.info("DAG run %s of %s finished: %s", run.run_id, run.dag_id, run.state)
    session.commit()
    if finished is not None:
        finished.extend(done)


def next_due_at(session: Session) -> datetime | None:
    """When the earliest retry or sensor reschedule falls due: the scheduler wakes up then."""
    return session.execute(select(func.min(TaskInstance.next_retry_at)).where(
        TaskInstance.state.in_(list(_DUE)))).scalar_one_or_none()


def due_runs(session: Session, now: datetime) -> set[tuple[str, str]]:
    """Runs with a retry or a sensor reschedule due by ``now``, to evaluate without a full pass."""
    rows = session.execute(select(TaskInstance.dag_id, TaskInstance.run_id).distinct().where(
        TaskInstance.state.in_(list(_DUE)), TaskInstance.next_retry_at <= now)).all()
    return {(dag_id, run_id) for dag_id, run_id in rows}
