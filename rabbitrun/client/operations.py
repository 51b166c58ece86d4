"""What the CLI asks of a running system: DB lifecycle, DAG listing, triggering and
waiting, task states and logs, running one attempt, topology.

Every function takes the settings and returns plain values, so tests call
these directly and the CLI only parses and renders.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rabbitrun.errors import DagError, DagNotFound, DagRunNotFound, RabbitrunError, TaskNotFound
from rabbitrun.keys import TaskInstanceKey, log_relpath
from rabbitrun.models.views import TaskStateRow
from rabbitrun.settings import Settings


def _sessions(settings: Settings) -> Any:
    from rabbitrun.models.engine import make_engine, session_factory

    return session_factory(make_engine(settings.database, pooled=False))


def dagbag(settings: Settings) -> Any:
    from rabbitrun.authoring import DagBag

    return DagBag(Path(settings.core.dags_folder), include_examples=settings.core.load_examples)


# --- db -----------------------------------------------------------------------------


def db_init(settings: Settings) -> str:
    from rabbitrun.models import migrate
    from rabbitrun.models.engine import make_engine

    Path(settings.core.dags_folder).mkdir(parents=True, exist_ok=True)
    return migrate.upgrade(make_engine(settings.database, pooled=False))


def db_check(settings: Settings) -> str:
    from rabbitrun.models import migrate
    from rabbitrun.models.engine import make_engine

    return migrate.check(make_engine(settings.database, pooled=False))


def db_reset(settings: Settings) -> str:
    from rabbitrun.models import migrate
    from rabbitrun.models.engine import make_engine

    return migrate.reset(make_engine(settings.database, pooled=False))


# --- dags -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DagListing:
    dags: list[tuple[str, str, str]]  # dag_id, file ref, schedule
    import_errors: list[tuple[str, int | None, str]]  # file, line, exception


def list_dags(settings: Settings) -> DagListing:
    bag = dagbag(settings)
    dags = [(d, bag.file_ref(d), str(bag.dags[d].schedule)) for d in sorted(bag.dags)]
    errors = [(ref, e.lineno, e.exception) for ref, e in sorted(bag.import_errors.items())]
    return DagListing(dags, errors)


def _known_dag(settings: Settings, dag_id: str) -> None:
    """Accept a DAG the scheduler has registered, else parse the dags folder to be sure."""
    from rabbitrun.models.tables import DagModel

    with _sessions(settings)() as session:
        if session.get(DagModel, dag_id) is not None:
            return
    bag = dagbag(settings)
    if dag_id not in bag.dags:
        raise DagNotFound(dag_id)


def trigger(settings: Settings, dag_id: str, *, run_id: str | None = None, conf: dict[str, Any] | None = None) -> str:
    """Create a QUEUED DAG run the scheduler will start; returns its run id."""
    from rabbitrun.models.lean import LeanDB

    lean = LeanDB.open(settings.database)  # a DAG the scheduler registered: no SQLAlchemy import (W1)
    if lean is not None:
        try:
            if lean.dag_registered(dag_id):
                now = datetime.now(UTC)  # queued_at: when the row is written, not before the driver loaded
                run_id = run_id or _manual_run_id(now)
                lean.insert_queued_run(dag_id, run_id, conf or {}, now)
                return run_id
        finally:
            lean.close()
    now = datetime.now(UTC)
    return _trigger_orm(settings, dag_id, run_id or _manual_run_id(now), conf or {}, now)


def _manual_run_id(now: datetime) -> str:
    return f"manual__{now.isoformat(timespec='microseconds')}"


def _trigger_orm(settings: Settings, dag_id: str, run_id: str, conf: dict[str, Any], now: datetime) -> str:
    from sqlalchemy.exc import IntegrityError

    from rabbitrun.models import runs
    from rabbitrun.models.engine import db_errors, make_engine, session_factory

    engine = make_engine(settings.database, pooled=False)
    with db_errors(engine):
        _known_dag(settings, dag_id)
        try:
            with session_factory(engine)() as session:
                runs.create_run(session, dag_id, run_id, conf, now)
        except IntegrityError as exc:
            raise DagError(f"DAG run {run_id!r} of {dag_id!r} already exists") from exc
        _nudge_scheduler(engine, str(settings.database.url))
    return run_id


def _nudge_scheduler(engine: Any, url: str) -> None:
    """Wake the scheduler now rather than at its next poll (best effort, rabbitrun.models.wakeup)."""
    from sqlalchemy.exc import DBAPIError

    from rabbitrun.models import wakeup

    if engine.dialect.name == "postgresql":
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql(wakeup.NOTIFY_SQL)
                connection.commit()
        except DBAPIError:  # the run is written; the poll finds it
            pass
    else:
        wakeup.nudge_sqlite(url)


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

    with (sessions or _sessions(settings))() as session:
        state, counts = runs.state_and_counts(session, dag_id, run_id)
    if state is None:
        raise DagRunNotFound(dag_id, run_id)
    return _progress(state, counts)


def _progress(run_state: str, counts: dict[str, int]) -> RunProgress:
    from rabbitrun.states import DUE_STATES, FINISHED_TASK_STATES, TaskState

    total = sum(counts.values())
    done = sum(n for s, n in counts.items() if s in {x.value for x in FINISHED_TASK_STATES})
    failed = counts.get(TaskState.FAILED.value, 0) + counts.get(TaskState.UPSTREAM_FAILED.value, 0)
    return RunProgress(run_state, total, done, counts.get(TaskState.RUNNING.value, 0), failed,
                       counts.get(TaskState.QUEUED.value, 0), sum(counts.get(s.value, 0) for s in DUE_STATES))


def wait_for_run(settings: Settings, dag_id: str, run_id: str, *, on_progress: Callable[[RunProgress], None],
                 poll_s: float = 0.02, timeout_s: float | None = None) -> RunProgress:
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
        sessions = _sessions(settings)

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
                raise RabbitrunError(f"DAG run {run_id} did not finish within {timeout_s:g}s")
            time.sleep(poll_s)
    finally:
        if lean is not None:
            lean.close()


# --- tasks ---------------------------------------------------------------------------------


def task_states(settings: Settings, dag_id: str, run_id: str) -> list[TaskStateRow]:
    from rabbitrun.models import runs

    with _sessions(settings)() as session:
        return runs.task_state_rows(session, dag_id, run_id)


def read_log(settings: Settings, dag_id: str, task_id: str, run_id: str, *, try_number: int | None = None,
             map_index: int = -1) -> tuple[Path, str]:
    """The local per-try log file of an attempt (the latest try when none is given)."""
    from rabbitrun.models import attempts

    if try_number is None:
        with _sessions(settings)() as session:
            ti = attempts.get_ti(session, TaskInstanceKey(dag_id, task_id, run_id, map_index))
        if ti is None:
            raise TaskNotFound(dag_id, task_id) if dag_id else DagRunNotFound(dag_id, run_id)
        try_number = max(ti.try_number, 1)
    path = Path(settings.logging.base_log_folder) / log_relpath(
        TaskInstanceKey(dag_id, task_id, run_id, map_index, try_number))
    if not path.is_file():
        raise RabbitrunError(f"no log for {dag_id}.{task_id} run={run_id} try={try_number} at {path}")
    return path, path.read_text(encoding="utf-8", errors="replace")


def attempt_key(settings: Settings, dag_id: str, task_id: str, run_id: str, *, try_number: int | None = None,
                map_index: int = -1) -> TaskInstanceKey:
    """The key of one attempt of a known task instance (the latest try when none is given);
    an unknown DAG, run or task is a DagError (exit 2)."""
    from rabbitrun.models import attempts

    with _sessions(settings)() as session:
        ti = attempts.get_ti(session, TaskInstanceKey(dag_id, task_id, run_id, map_index))
    if ti is None:
        _known_dag(settings, dag_id)
        run_progress(settings, dag_id, run_id)  # raises DagRunNotFound
        raise TaskNotFound(dag_id, task_id)
    return TaskInstanceKey(dag_id, task_id, run_id, map_index, try_number or max(ti.try_number, 1))


def log_path(settings: Settings, key: TaskInstanceKey) -> Path:
    return Path(settings.logging.base_log_folder) / log_relpath(key)


def attempt_ended(settings: Settings, key: TaskInstanceKey) -> str | None:
    """The state attempt ``key`` ended in, or None while it may still run (not started, queued,
    running). A later try, or the same try back to none/scheduled (cleared), means it ended."""
    from rabbitrun.models import attempts
    from rabbitrun.states import TaskState

    with _sessions(settings)() as session:
        ti = attempts.get_ti(session, key)
    if ti is None or ti.try_number > key.try_number:
        return "ended"
    if ti.try_number < key.try_number or ti.state in (TaskState.QUEUED.value, TaskState.RUNNING.value):
        return None
    return str(ti.state)


def run_task(settings: Settings, dag_id: str, task_id: str, run_id: str, *, map_index: int = -1,
             try_number: int | None = None, hostname: str) -> Any:
    """Run one attempt here, through the runner the worker's child uses.

    With no try number, a finished or never-queued task instance gets a new
    try (QUEUED, try_number + 1) first, as `airflow tasks run` would.
    """
    from rabbitrun import runner
    from rabbitrun.authoring import MappedOperator
    from rabbitrun.models import attempts
    from rabbitrun.models.base import utcnow
    from rabbitrun.states import CLAIMABLE_STATES, TaskState

    bag = dagbag(settings)
    if isinstance(bag.get_dag(dag_id).get_task(task_id), MappedOperator) and map_index < 0:
        raise DagError(f"{dag_id}.{task_id} is a mapped task: give --map-index of one of its instances "
                       "(`tasks states` lists them)")
    sessions = _sessions(settings)
    with sessions() as session:
        ti = attempts.get_ti(session, TaskInstanceKey(dag_id, task_id, run_id, map_index))
        if ti is None:
            raise DagRunNotFound(dag_id, run_id)
        if try_number is None:
            if ti.state not in {s.value for s in CLAIMABLE_STATES}:
                ti.try_number += 1
                ti.state, ti.queued_at = TaskState.QUEUED.value, utcnow()
                session.commit()
            try_number = ti.try_number
    key = TaskInstanceKey(dag_id, task_id, run_id, map_index, try_number)
    return runner.run_attempt(settings, sessions, bag, key, hostname=hostname, in_process=True)


# --- topology ---------------------------------------------------------------------------------


def _topology(settings: Settings) -> Any:
    from rabbitrun.broker.topology import load_topology

    path = Path(settings.broker.topology_file) if settings.broker.topology_file else None
    return load_topology(path, settings.broker)


def declare_topology(settings: Settings, *, scheduler_id: str | None = None) -> Any:
    import asyncio

    from rabbitrun.broker.connection import connect
    from rabbitrun.broker.topology import declare_topology as declare
    from rabbitrun.names import Names

    async def main() -> Any:
        connection = await connect(settings.broker, "cli", "topology")
        try:
            return await declare(connection, _topology(settings), Names(settings.broker.prefix),
                                 scheduler_id=scheduler_id)
        finally:
            await connection.close()

    return asyncio.run(main())


def export_topology(settings: Settings, *, vhost: str = "/", scheduler_ids: tuple[str, ...] = ()) -> str:
    from rabbitrun.broker.topology import export_definitions
    from rabbitrun.names import Names

    defs = export_definitions(_topology(settings), Names(settings.broker.prefix), vhost=vhost,
                              scheduler_ids=scheduler_ids or (settings.scheduler.scheduler_id,))
    return json.dumps(defs, indent=2, sort_keys=True)


# --- variables, connections, keys, cleanup ---------------------------------------------------


def data_access(settings: Settings) -> Any:
    from rabbitrun.data import access as runtime

    return runtime.build(settings, _sessions(settings))


def ensure_fernet_key(settings: Settings) -> str | None:
    """On a home without a key, generate one into rabbitrun.toml (mode 0600); returns the file written."""
    from rabbitrun.secrets import generate_key

    if settings.core.fernet_key:
        return None
    path = settings.config_file
    text = path.read_text() if path.exists() else ""
    if "fernet_key" in text:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    block = f'\n[core]\nfernet_key = "{generate_key()}"\n' if "[core]" not in text else None
    if block is None:
        text = text.replace("[core]", f'[core]\nfernet_key = "{generate_key()}"', 1)
    else:
        text += block
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others, not even briefly
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    path.chmod(0o600)  # an existing file keeps its mode on open: tighten it too
    return str(path)


def rotate_fernet_key(settings: Settings) -> tuple[int, int]:
    access = data_access(settings)
    return access.variables.rotate(), access.connections.rotate()


def clean_db(settings: Settings, before: datetime, tables: list[str], *, dry_run: bool) -> dict[str, int]:
    """Delete rows older than ``before`` from the named tables (xcom, task_attempt, dag_run)."""
    from rabbitrun.errors import ConfigError
    from rabbitrun.models import xcom
    from rabbitrun.models.tables import DagRun, TaskAttempt

    cleaners = {
        "xcom": lambda s: xcom.clean(s, before, dry_run=dry_run),
        "task_attempt": lambda s: _clean(s, TaskAttempt, TaskAttempt.end_date < before, dry_run),
        "dag_run": lambda s: _clean(s, DagRun, (DagRun.end_date < before) & DagRun.state.in_(("success", "failed")),
                                    dry_run),
    }
    unknown = [t for t in tables if t not in cleaners]
    if unknown:
        raise ConfigError(f"cannot clean table(s) {unknown}; choose from {sorted(cleaners)}", key="--tables")
    with _sessions(settings)() as session:
        return {t: cleaners[t](session) for t in tables}


def _clean(session: Any, model: Any, condition: Any, dry_run: bool) -> int:
    from sqlalchemy import delete, func, select

    count = int(session.execute(select(func.count()).select_from(model).where(condition)).scalar_one())
    if not dry_run:
        session.execute(delete(model).where(condition))
        session.commit()
    return count


# --- run management (issue 7) -------------------------------------------------------------------


def set_paused(settings: Settings, dag_id: str, paused: bool) -> None:
    """Paused DAGs keep their runs but start no new ones until unpaused (as in Airflow)."""
    from rabbitrun.models.tables import DagModel

    with _sessions(settings)() as session:
        row = session.get(DagModel, dag_id)
        if row is None:
            bag = dagbag(settings)
            if dag_id not in bag.dags:
                raise DagNotFound(dag_id)
            row = DagModel(dag_id=dag_id, fileloc=bag.file_ref(dag_id))
            session.add(row)
        row.is_paused = paused
        session.commit()


def clear_tasks(settings: Settings, dag_id: str, *, task_regex: str = ".*", run_id: str | None = None,
                downstream: bool = False, dry_run: bool = False) -> list[tuple[str, str]]:
    """Reset matching finished task instances (and optionally their downstream) so they run again
    with a new try; their runs go back to running. Returns (run_id, task_id) pairs cleared."""
    import re

    from sqlalchemy import select

    from rabbitrun.models import mapping
    from rabbitrun.models.tables import DagRun, TaskInstance
    from rabbitrun.states import DagRunState, TaskState

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
    cleared: list[tuple[str, str]] = []
    expanded: set[tuple[str, str]] = set()
    with _sessions(settings)() as session:
        query = select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.task_id.in_(chosen),
                                           TaskInstance.state.notin_([TaskState.RUNNING.value, TaskState.QUEUED.value]))
        if run_id:
            query = query.where(TaskInstance.run_id == run_id)
        for ti in session.execute(query).scalars():
            if ti.map_index >= 0:  # a mapped task's instances: collapsed below, re-expanded when ready
                expanded.add((ti.run_id, ti.task_id))
                continue
            cleared.append((ti.run_id, ti.task_id))
            if not dry_run:  # try_number is kept: the next queueing makes it try_number + 1
                ti.state, ti.end_date, ti.reason, ti.next_retry_at = TaskState.NONE.value, None, None, None
                ti.max_tries = ti.try_number + dag.get_task(ti.task_id).retries
        for run, task_id in sorted(expanded):
            if dry_run or mapping.collapse(session, dag_id, run, task_id, dag.get_task(task_id).retries):
                cleared.append((run, task_id))
        runs = {r for r, _ in cleared}
        if runs and not dry_run:
            for run in session.execute(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id.in_(runs))).scalars():
                run.state, run.end_date = DagRunState.RUNNING.value, None
            session.commit()
    return sorted(cleared)


def set_task_state(settings: Settings, dag_id: str, task_id: str, run_id: str, state: str, *,
                   map_index: int = -1) -> Any:
    """Mark one task instance success or failed; the scheduler continues downstream from it."""
    from rabbitrun.client import marking

    dag = dagbag(settings).get_dag(dag_id)
    with _sessions(settings)() as session:
        return marking.set_task_state(session, dag, run_id, task_id, state, datetime.now(UTC), map_index)


def set_run_state(settings: Settings, dag_id: str, run_id: str, state: str) -> Any:
    """Mark a whole DAG run success or failed, with its unfinished task instances."""
    from rabbitrun.client import marking

    with _sessions(settings)() as session:
        return marking.set_run_state(session, dag_id, run_id, state, datetime.now(UTC))


def delete_dag(settings: Settings, dag_id: str) -> int:
    """Delete a DAG's runs, task instances, attempts and XComs from the metadata DB."""
    from sqlalchemy import delete

    from rabbitrun.models.tables import DagModel, DagRun, TaskAttempt, TaskInstance, TaskReschedule, XComRow

    with _sessions(settings)() as session:
        runs = session.execute(delete(DagRun).where(DagRun.dag_id == dag_id)).rowcount
        for model in (TaskInstance, TaskAttempt, TaskReschedule, XComRow):
            session.execute(delete(model).where(model.dag_id == dag_id))
        found = session.execute(delete(DagModel).where(DagModel.dag_id == dag_id)).rowcount
        if not runs and not found:
            raise DagNotFound(dag_id)
        session.commit()
    return int(runs)


def backfill(settings: Settings, dag_id: str, start: datetime, end: datetime) -> list[str]:
    """Create a run per data interval of the DAG's schedule between ``start`` and ``end`` (existing
    ones are kept); the scheduler runs them, max_active_runs at a time. Returns the run ids."""
    from sqlalchemy import select

    from rabbitrun.authoring import timetables
    from rabbitrun.models import runs
    from rabbitrun.models.tables import DagRun

    dag = dagbag(settings).get_dag(dag_id)
    if dag.schedule is None or dag.schedule == "@once":
        raise DagError(f"DAG {dag_id!r} has no periodic schedule to backfill")
    intervals = timetables.intervals_after(dag.schedule, dag.start_date or start, start, end)
    run_ids = []
    with _sessions(settings)() as session:
        existing = set(session.execute(select(DagRun.run_id).where(DagRun.dag_id == dag_id)).scalars())
        now = datetime.now(UTC)
        for interval in intervals:
            run_id = f"backfill__{interval.start.isoformat()}"
            scheduled = f"scheduled__{interval.start.isoformat()}"
            if scheduled in existing:  # the scheduler already made this interval's run
                run_id = scheduled
            elif run_id not in existing:
                runs.create_run(session, dag_id, run_id, {}, now, run_type="backfill", interval=interval,
                                      commit=False)
            run_ids.append(run_id)
        session.commit()
    return run_ids
