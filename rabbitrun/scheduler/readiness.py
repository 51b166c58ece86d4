"""Which task instances of running runs are ready, skipped or failed: the scheduler's pass over them.

Synchronous and broker-free so the scheduler loop can run it in a thread and
tests can call it directly. :func:`schedule` returns envelopes; the executor
publishes them and reports back which failed (DESIGN rule 1: QUEUED only for a
confirmed envelope, put back when the publish fails, see
:mod:`rabbitrun.scheduler.queueing`).

Several schedulers may share one PostgreSQL database: each evaluates only the
runs it could lock (``FOR UPDATE SKIP LOCKED``); slots and the compare-and-set
that queues the ready ones are :mod:`rabbitrun.scheduler.queueing`'s.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, tuple_
from sqlalchemy.orm import Session

from rabbitrun.authoring import DAG, BaseOperator, DagBag, Decision, MappedOperator, TriggerRule, evaluate
from rabbitrun.errors import DagNotFound, MappingError, XComError
from rabbitrun.models import mapping, transitions, xcom
from rabbitrun.models.tables import DagRun, TaskInstance
from rabbitrun.protocol import TaskEnvelope
from rabbitrun.scheduler import past, queueing
from rabbitrun.scheduler.mapping import map_length
from rabbitrun.scheduler.runs import DUE, FINISHED, FinishedRun, finish_run_if_done
from rabbitrun.settings import Settings
from rabbitrun.states import DagRunState, TaskState

log = logging.getLogger("rabbitrun.scheduler")


#: Turns a ready mapped placeholder into its ready instances (see _expander).
Expander = Callable[[TaskInstance, MappedOperator], list[TaskInstance]]


@dataclass(slots=True)
class PassNotes:
    """What a pass of :func:`schedule` leaves for the scheduler loop to follow up without waiting
    for the next poll: runs to evaluate again soon, and runs whose ready tasks wait for a slot
    (a finishing task frees one, so any result should re-evaluate them)."""

    again: set[tuple[str, str]] = field(default_factory=set)
    waiting: set[tuple[str, str]] = field(default_factory=set)


def schedule(
    session: Session,
    dagbag: DagBag,
    settings: Settings,
    now: datetime,
    only: Iterable[tuple[str, str]] | None = None,
    notes: PassNotes | None = None,
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
    changes = transitions.Changes()  # skips, upstream failures, failures: written together below
    expand = _expander(session, settings, now, changes)
    ready: list[tuple[TaskInstance, DAG, DagRun]] = []
    done: list[FinishedRun] = []
    dags: list[tuple[DagRun, DAG]] = []
    for run in runs:
        try:
            dags.append((run, dagbag.get_dag(run.dag_id)))
        except DagNotFound:
            continue  # its file may be failing to import right now; keep the run and retry later
    blocked = past.blocked_by_past(session, dags)  # depends_on_past: one query for the whole pass
    for run, dag in dags:
        tis = tis_by_run.get((run.dag_id, run.run_id), [])
        waits = blocked.get((run.dag_id, run.run_id), set())
        ready.extend((ti, dag, run) for ti in _evaluate_run(dag, tis, now, expand, changes, waits))
        finish_run_if_done(run, dag, tis, now, done)
    admitted = queueing.admit(session, ready, settings, now, notes.again, notes.waiting, changes)
    changes.write(session)
    envelopes = queueing.queue(session, admitted, dagbag, settings, now)
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
    return (
        select(TaskInstance.dag_id, TaskInstance.run_id)
        .where(TaskInstance.state.notin_(list(FINISHED)))
        .group_by(TaskInstance.dag_id, TaskInstance.run_id)
        .having(func.sum(case((TaskInstance.state.in_(active), 0), else_=1)) == 0)
    )


def _running_elsewhere(session: Session, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Of runs this pass could not lock, those still running (locked by another scheduler)."""
    if session.get_bind().dialect.name != "postgresql":
        return set()  # no row locks: a run that was not returned is no longer running
    rows = session.execute(
        select(DagRun.dag_id, DagRun.run_id).where(
            tuple_(DagRun.dag_id, DagRun.run_id).in_(list(pairs)), DagRun.state == DagRunState.RUNNING.value
        )
    ).all()
    return {(dag_id, run_id) for dag_id, run_id in rows}


def _load_tis(session: Session, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[TaskInstance]]:
    out: dict[tuple[str, str], list[TaskInstance]] = defaultdict(list)
    for chunk_start in range(0, len(pairs), 500):
        chunk = pairs[chunk_start : chunk_start + 500]
        rows = session.execute(
            select(TaskInstance).where(tuple_(TaskInstance.dag_id, TaskInstance.run_id).in_(chunk))
        ).scalars()
        for ti in rows:
            out[(ti.dag_id, ti.run_id)].append(ti)
    return out


def _evaluate_run(
    dag: DAG,
    tis: list[TaskInstance],
    now: datetime,
    expand: Expander,
    changes: transitions.Changes,
    waits_for_past: set[str] | frozenset[str] = frozenset(),
) -> list[TaskInstance]:
    """One pass in topological order settles skips and upstream failures (into ``changes``; the rows
    show them at once); returns ready TIs.

    A task's upstream states are those of all instances of its upstream tasks
    (every mapped instance counts); a ready mapped placeholder is ``expand``-ed
    into its instances instead of being queued itself. A task in ``waits_for_past`` (depends_on_past,
    its previous instance not done) that could run stays as it is, for a later pass.
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
        if ti.state in DUE:  # a retry, or a sensor's next poke
            if ti.next_retry_at is None or ti.next_retry_at <= now:
                ready.append(ti)
            continue
        if ti.state != TaskState.NONE.value:
            continue
        decision = decisions.get(task.task_id)
        if decision is None:  # the same for every instance of a task: evaluated once
            upstream = [TaskState(u.state) for up in task.upstream_task_ids for u in by_task.get(up, ())]
            setups = (
                _setup_states(dag, task, by_task) if task.trigger_rule == TriggerRule.ALL_DONE_SETUP_SUCCESS else []
            )
            decision = decisions[task.task_id] = evaluate(task.trigger_rule, upstream, setups)
            if decision == Decision.RUN and task.task_id in waits_for_past:
                decision = decisions[task.task_id] = Decision.WAIT
        if decision == Decision.RUN and isinstance(task, MappedOperator) and ti.map_index < 0:
            instances = expand(ti, task)
            if instances:
                by_task[task.task_id] = instances
            ready.extend(instances)
        elif decision == Decision.RUN:
            ready.append(ti)
        elif decision == Decision.SKIP:
            changes.add(ti, transitions.SETTLE, TaskState.SKIPPED, start_date=now, end_date=now, duration=0.0)
        elif decision == Decision.UPSTREAM_FAILED:
            changes.add(
                ti, transitions.SETTLE, TaskState.UPSTREAM_FAILED, end_date=now, reason="an upstream task failed"
            )
    return ready


def _setup_states(dag: DAG, task: BaseOperator, by_task: dict[str, list[TaskInstance]]) -> list[TaskState]:
    """The states of a teardown's upstream setup tasks (all_done_setup_success reads them)."""
    return [
        TaskState(u.state) for up in task.upstream_task_ids if dag.get_task(up).is_setup for u in by_task.get(up, ())
    ]


def _instances_in_order(
    dag: DAG, by_task: dict[str, list[TaskInstance]]
) -> Iterator[tuple[BaseOperator, TaskInstance]]:
    """Every task instance, tasks in topological order, the instances of a mapped task together."""
    for task in dag.topological_sort():
        for ti in list(by_task.get(task.task_id, ())):
            yield task, ti


def _expander(session: Session, settings: Settings, now: datetime, changes: transitions.Changes) -> Expander:
    """What a ready mapped placeholder becomes: its instances (all ready), or skipped when there is
    nothing to map over, or failed with the reason when its input is not a list or too long (both
    into ``changes``)."""
    backends: list[xcom.XComBackend] = []

    def expand(ti: TaskInstance, task: MappedOperator) -> list[TaskInstance]:
        if not backends:
            backends.append(xcom.load_backend_without_pickle(settings.core.xcom_backend, settings))  # never unpickle
        try:
            length = map_length(
                session, task, ti.dag_id, ti.run_id, max_length=settings.core.max_map_length, backend=backends[0]
            )
        except (MappingError, XComError) as exc:
            changes.add(ti, transitions.SETTLE, TaskState.FAILED, end_date=now, reason=str(exc))
            log.error("%s.%s run=%s: %s", ti.dag_id, ti.task_id, ti.run_id, exc)
            return []
        if length == 0:
            changes.add(
                ti,
                transitions.SETTLE,
                TaskState.SKIPPED,
                start_date=now,
                end_date=now,
                duration=0.0,
                reason="mapped over an empty list",
            )
            return []
        return mapping.expand(session, ti, length)

    return expand
