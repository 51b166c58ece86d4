"""Run ONE attempt in this process: claim, build the context, execute, record.

This is the code path of both the worker's forked task child and
``rabbitrun tasks run``. It never touches the broker: it talks to the
metadata DB and writes the attempt's log file; the worker parent publishes.

Time limits: SIGTERM (sent by the worker at the soft limit, or by an alarm
armed here for in-process runs) raises :class:`TaskTimeout` inside the task
once its ``execution_timeout`` has passed, so the task may clean up. A SIGTERM
before that (worker shutdown) raises :class:`Terminated`, and the attempt is
released back to QUEUED so the requeued delivery can run it elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType, SimpleNamespace
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from rabbitrun.authoring import DAG, BaseOperator, DagBag, MappedOperator
from rabbitrun.authoring.signals import FailTask, RescheduleTask, SkipTask, TaskTimeout
from rabbitrun.errors import DagError, RabbitrunError, XComError
from rabbitrun.keys import TaskInstanceKey, log_relpath
from rabbitrun.models import attempts, mapping, xcom
from rabbitrun.models.base import utcnow
from rabbitrun.models.engine import retrying
from rabbitrun.models.tables import DagRun, TaskInstance
from rabbitrun import runtime, templating
from rabbitrun.secrets import SecretsMasker, reset_masker, use_masker
from rabbitrun.settings import Settings
from rabbitrun.states import TaskState

TASK_LOGGER = "rabbitrun.task"
_NO_VALUE: Any = object()


class Terminated(BaseException):
    """SIGTERM before the time limit: the worker is shutting down. BaseException so
    that a task's ``except Exception`` cannot swallow it."""


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What the runner decided; the worker turns it into a result message."""

    key: TaskInstanceKey
    state: str  # a TaskState, or "not_claimed" / "unknown"
    claimed: bool
    started_at: datetime | None
    ended_at: datetime | None
    error: str = ""

    @property
    def exit_code(self) -> int:
        return 0 if self.state in (TaskState.SUCCESS, TaskState.SKIPPED, TaskState.UP_FOR_RESCHEDULE) else 1


# --- the runtime objects a task sees ------------------------------------------------


class RuntimeTaskInstance:
    """``context["ti"]``: the attempt as Airflow's TaskInstance presents it to a task."""

    def __init__(self, key: TaskInstanceKey, task: BaseOperator, claim: attempts.Claim, hostname: str,
                 access: runtime.DataAccess) -> None:
        self.key = key
        self.task = task
        self.dag_id, self.task_id, self.run_id = key.dag_id, key.task_id, key.run_id
        self.map_index, self.try_number = key.map_index, key.try_number
        self.max_tries = claim.max_tries
        self.hostname = hostname
        self.queue = claim.queue
        self.log = logging.getLogger(TASK_LOGGER)
        self._access = access

    def xcom_push(self, key: str, value: Any) -> None:
        core = self._access.settings.core
        with self._access.sessions() as session:
            xcom.set_xcom(session, self.key, key, value, allow_pickle=core.enable_xcom_pickling,
                          max_bytes=core.max_xcom_size, backend=self._access.xcom_backend)
            session.commit()

    def xcom_pull(self, task_ids: str | Sequence[str] | None = None, key: str = xcom.RETURN_VALUE,
                  dag_id: str | None = None, run_id: str | None = None, default: Any = None,
                  map_indexes: int | Sequence[int] | None = None) -> Any:
        """One task id -> its value; a list -> values in the order asked (None where missing).

        A mapped task's value is the list of its instances' values in map-index
        order (None for an instance that pushed nothing); ``map_indexes`` picks
        instances instead: an int -> that instance's value, a list -> their values.
        """
        ids = [self.task_id] if task_ids is None else [task_ids] if isinstance(task_ids, str) else list(task_ids)
        dag_id, run_id = dag_id or self.dag_id, run_id or self.run_id
        with self._access.sessions() as session:
            found = xcom.get_xcoms(session, dag_id, run_id, ids, key,
                                   allow_pickle=self._access.settings.core.enable_xcom_pickling,
                                   backend=self._access.xcom_backend)
            maybe = [t for t in ids if self._is_mapped(t, dag_id) is not False] if map_indexes is None else []
            indexes = mapping.mapped_indexes(session, dag_id, run_id, maybe) if maybe else {}
        if map_indexes is not None:
            values = [_pick(found, tid, map_indexes, default) for tid in ids]
        else:
            values = [_value_for(found, tid, indexes.get(tid), bool(self._is_mapped(tid, dag_id)), default)
                      for tid in ids]
        return values[0] if isinstance(task_ids, str) or task_ids is None else values

    def _is_mapped(self, task_id: str, dag_id: str) -> bool | None:
        """Whether a task is mapped, when this task's DAG knows it (None for another DAG's task).
        A mapped task that expanded to nothing still has a list value: []."""
        dag = self.task.dag
        if dag is None or dag.dag_id != dag_id or not dag.has_task(task_id):
            return None
        return isinstance(dag.get_task(task_id), MappedOperator)

    def reschedule_history(self) -> attempts.RescheduleHistory:
        """For sensors in reschedule mode: when this try's first poke started, and how many
        reschedules it has had (its timeout counts from that first poke)."""
        with self._access.sessions() as session:
            return attempts.reschedule_history(session, self.key)

    def __repr__(self) -> str:
        return f"<TaskInstance {self.key}>"


def _value_for(found: dict[tuple[str, int], Any], task_id: str, indexes: list[int] | None, mapped: bool,
               default: Any) -> Any:
    if indexes:
        return [found.get((task_id, mi)) for mi in indexes]
    if mapped:
        return []
    return found.get((task_id, -1), default)


def _pick(found: dict[tuple[str, int], Any], task_id: str, map_indexes: int | Sequence[int], default: Any) -> Any:
    if isinstance(map_indexes, int):
        return found.get((task_id, map_indexes), default)
    return [found.get((task_id, mi), default) for mi in map_indexes]


class _VariableAccessor:
    """``context["var"]["value"]`` / ``["json"]``, and ``var.value.name`` in templates."""

    def __init__(self, access: runtime.DataAccess, as_json: bool) -> None:
        self._access, self._json = access, as_json

    def get(self, key: str, default_var: Any = _NO_VALUE) -> Any:
        if default_var is _NO_VALUE:
            return self._access.variables.get(key, deserialize_json=self._json)
        return self._access.variables.get(key, default_var, deserialize_json=self._json)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):  # copy/pickle/template engines probe dunders: not a variable lookup
            raise AttributeError(key)
        return self.get(key)


class _ConnectionAccessor:
    """``context["conn"].my_db`` / ``.get("my_db")``."""

    def __init__(self, access: runtime.DataAccess) -> None:
        self._access = access

    def get(self, conn_id: str) -> Any:
        return self._access.connections.get(conn_id)

    def __getattr__(self, conn_id: str) -> Any:
        if conn_id.startswith("__"):  # copy/pickle/template engines probe dunders: not a connection lookup
            raise AttributeError(conn_id)
        return self.get(conn_id)


def build_context(ti: RuntimeTaskInstance, dag: DAG, run: DagRun | SimpleNamespace, access: runtime.DataAccess) -> dict[str, Any]:
    conf = json.loads(run.conf or "{}")
    params = {**(getattr(dag, "params", None) or {}), **(ti.task.params or {}), **conf}
    logical_date = run.logical_date
    return {
        "ti": ti, "task_instance": ti, "task": ti.task, "dag": dag, "dag_run": run,
        "run_id": run.run_id, "logical_date": logical_date, "ds": logical_date.strftime("%Y-%m-%d"),
        "ds_nodash": logical_date.strftime("%Y%m%d"), "ts": logical_date.isoformat(),
        "params": params, "conf": conf, "try_number": ti.try_number,
        "data_interval_start": run.data_interval_start or logical_date,
        "data_interval_end": run.data_interval_end or logical_date,
        "var": {"value": _VariableAccessor(access, False), "json": _VariableAccessor(access, True)},
        "conn": _ConnectionAccessor(access),
    }


# --- logging --------------------------------------------------------------------


class _StreamToLogger:
    """sys.stdout/sys.stderr replacement so print() lands in the attempt's log."""

    def __init__(self, logger: logging.Logger, level: int) -> None:
        self._logger, self._level, self._buf = logger, level, ""

    def write(self, text: str) -> int:
        self._buf += text
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            self._logger.log(self._level, line)
        return len(text)

    def flush(self) -> None:
        if self._buf:
            self._logger.log(self._level, self._buf)
            self._buf = ""

    def isatty(self) -> bool:
        return False


@contextmanager
def attempt_log(settings: Settings, key: TaskInstanceKey, masker: SecretsMasker) -> Iterator[Path]:
    """Send the task logger, root logger and print() to the per-try log file, secrets masked."""
    path = Path(settings.logging.base_log_folder) / log_relpath(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(settings.logging.log_format))
    handler.addFilter(masker.filter())
    root = logging.getLogger()
    old_level, old_out, old_err, old_handlers = root.level, sys.stdout, sys.stderr, root.handlers[:]
    root.handlers[:] = [handler]  # the attempt's lines go to its file, not to the worker's stderr
    root.setLevel(settings.logging.level)
    task_logger = logging.getLogger(TASK_LOGGER)
    sys.stdout = _StreamToLogger(task_logger, logging.INFO)
    sys.stderr = _StreamToLogger(task_logger, logging.WARNING)
    try:
        yield path
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = old_out, old_err
        root.handlers[:] = old_handlers
        root.setLevel(old_level)
        handler.close()


# --- signals ----------------------------------------------------------------------


@contextmanager
def time_limit(timeout_s: float | None, *, arm_alarm: bool, started: float) -> Iterator[None]:
    """Install the SIGTERM handler (and, in-process, an alarm at the soft limit).

    ``started`` is the monotonic time the worker's clock for this attempt began
    (the fork): a SIGTERM at or after ``started + timeout_s`` is the soft
    limit; an earlier one is a shutdown.
    """

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        elapsed = time.monotonic() - started
        if timeout_s is not None and (signum == signal.SIGALRM or elapsed >= timeout_s - 0.05):
            raise TaskTimeout(f"Timeout after {elapsed:.1f}s (execution_timeout={timeout_s:g}s), PID: {os.getpid()}")
        raise Terminated(f"received signal {signal.Signals(signum).name}")

    old_term = signal.signal(signal.SIGTERM, on_signal)
    old_alarm = signal.signal(signal.SIGALRM, on_signal)
    if arm_alarm and timeout_s:
        signal.setitimer(signal.ITIMER_REAL, max(0.001, started + timeout_s - time.monotonic()))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGALRM, old_alarm)


# --- the attempt ---------------------------------------------------------------------


def run_attempt(
    settings: Settings, sessions: sessionmaker[Session], dagbag: DagBag, key: TaskInstanceKey,
    *, hostname: str, in_process: bool, clock_start: float | None = None, envelope_id: str | None = None,
) -> AttemptOutcome:
    """Claim ``key`` and run it to a recorded final state (or release it on shutdown).

    ``envelope_id``: the delivery a worker runs, recorded by the claim for its
    heartbeats; None for in-process runs, which have no envelope of their own.

    ``clock_start``: when the worker started timing this attempt (monotonic);
    defaults to now for in-process runs.
    """
    clock_start = time.monotonic() if clock_start is None else clock_start
    claimed_at = utcnow()  # start_date: duration = end_date - start_date, as in Airflow
    try:
        for attempt in retrying(settings.database):
            with attempt, attempts.attempt_db(sessions) as db:
                claim = attempts.claim(db, key, hostname=hostname, pid=os.getpid(), now=claimed_at,
                                       envelope_id=envelope_id)
    except DBAPIError as exc:  # the DB is down at task start: say so at once, never hang
        reason = f"metadata database unavailable at task start: {str(exc.orig or exc).strip().splitlines()[0]}"
        return AttemptOutcome(key, "db_unavailable", False, None, None, reason)
    if not claim.won:
        state = "unknown" if claim.state is None else "not_claimed"
        why = "no such task instance" if claim.state is None else f"attempt is {claim.state} (try {claim.try_number})"
        return AttemptOutcome(key, state, False, None, None, why)
    started = claimed_at
    masker = SecretsMasker()
    access = runtime.build(settings, sessions, masker)
    tokens = runtime.activate(access), use_masker(masker)
    try:
        return _run_claimed(settings, access, masker, dagbag, key, claim, hostname, in_process, clock_start,
                            started)
    finally:
        reset_masker(tokens[1])
        runtime.deactivate(tokens[0])


def _run_claimed(
    settings: Settings, access: runtime.DataAccess, masker: SecretsMasker, dagbag: DagBag, key: TaskInstanceKey,
    claim: attempts.Claim, hostname: str, in_process: bool, clock_start: float, started: datetime,
) -> AttemptOutcome:
    sessions = access.sessions
    with attempt_log(settings, key, masker):
        log = logging.getLogger(TASK_LOGGER)
        log.info("Starting attempt %s of %s", key.try_number, key)
        seen: dict[str, Any] = {}  # the task and context, once built, for the callbacks
        finish, error, value = _execute(access, dagbag, key, claim, hostname, in_process, clock_start, log, seen)
        if finish.reason:  # `tasks states` shows the reason: it must not carry a secret either
            finish = dataclasses.replace(finish, reason=masker.redact(finish.reason))
        for attempt in retrying(settings.database):  # finish is conditional on RUNNING: safe to repeat
            if value is _NO_VALUE and finish.state in _STATE_ONLY:  # most attempts: no ORM write to make
                with attempt, attempts.attempt_db(sessions) as db:
                    recorded = attempts.finish(db, key, finish, started_at=started)
            else:
                with attempt, sessions() as session:
                    finish, error, recorded = _record(session, access, key, finish, error, value, started)
        if recorded:
            log.info("Marking task as %s. dag_id=%s, task_id=%s, run_id=%s, start_date=%s, end_date=%s",
                     finish.state.upper(), key.dag_id, key.task_id, key.run_id, started.isoformat(),
                     finish.ended_at.isoformat())
            _run_callback(seen, finish.state, error, log)
        else:
            log.warning("Attempt %s was already decided elsewhere; keeping that decision", key)
    return AttemptOutcome(key, finish.state.value, True, started, finish.ended_at, masker.redact(error))


# outcomes whose record is the state change and the attempt row only (no XCom, no reschedule row)
_STATE_ONLY = frozenset({TaskState.SUCCESS, TaskState.FAILED, TaskState.UP_FOR_RETRY, TaskState.SKIPPED})

_CALLBACKS = {TaskState.SUCCESS: "on_success_callback", TaskState.FAILED: "on_failure_callback",
              TaskState.UP_FOR_RETRY: "on_retry_callback"}


def _run_callback(seen: dict[str, Any], state: TaskState, error: str, log: logging.Logger) -> None:
    """Run the task's callback for this outcome once, after it is recorded: a failing callback is
    logged and never changes the outcome (Airflow's rule)."""
    name = _CALLBACKS.get(state)
    task, context = seen.get("task"), seen.get("context")
    callback = getattr(task, name, None) if name else None
    if callback is None or context is None:
        return
    try:
        callback({**context, "exception": error or None, "state": state.value})
    except Exception:  # noqa: BLE001 - user callback: logged, never changes the recorded outcome
        log.exception("%s of %s failed; the task outcome (%s) stands", name, task, state.value)


def _record(
    session: Session, access: runtime.DataAccess, key: TaskInstanceKey, finish: attempts.Finish, error: str,
    value: Any, started: datetime,
) -> tuple[attempts.Finish, str, bool]:
    """Write the final state and the return value's XCom in one transaction (one commit)."""
    if finish.state == TaskState.QUEUED:  # released on shutdown: the requeued delivery claims it again
        attempts.record_attempt(session, key, "terminated", None, finish.ended_at, None, os.getpid(), finish.reason)
        result = session.execute(
            update(TaskInstance)
            .where(TaskInstance.dag_id == key.dag_id, TaskInstance.task_id == key.task_id,
                   TaskInstance.run_id == key.run_id, TaskInstance.map_index == key.map_index,
                   TaskInstance.try_number == key.try_number, TaskInstance.state == TaskState.RUNNING.value)
            .values(state=TaskState.QUEUED.value, reason=finish.reason, queued_at=finish.ended_at)
        )
        session.commit()
        return finish, error, bool(result.rowcount)  # type: ignore[attr-defined]
    if value is not _NO_VALUE:
        try:
            core = access.settings.core
            xcom.set_xcom(session, key, xcom.RETURN_VALUE, value, allow_pickle=core.enable_xcom_pickling,
                          max_bytes=core.max_xcom_size, backend=access.xcom_backend)
        except XComError as exc:
            session.rollback()
            logging.getLogger(TASK_LOGGER).error("Task failed: %s", exc)
            finish, error = attempts.Finish(TaskState.FAILED, utcnow(), str(exc)), str(exc)
    if finish.state == TaskState.UP_FOR_RESCHEDULE:  # the reschedule row and the state: one commit
        assert finish.next_retry_at is not None
        recorded = attempts.finish(session, key, finish, started_at=started, commit=False)
        if recorded:
            attempts.record_reschedule(session, key, started, finish.ended_at, finish.next_retry_at)
            session.commit()
        return finish, error, recorded
    return finish, error, attempts.finish(session, key, finish, started_at=started)


def _execute(
    access: runtime.DataAccess, dagbag: DagBag, key: TaskInstanceKey,
    claim: attempts.Claim, hostname: str, in_process: bool, clock_start: float, log: logging.Logger,
    seen: dict[str, Any],
) -> tuple[attempts.Finish, str, Any]:
    """Run the operator; every way it can end becomes a Finish (a process boundary).

    Returns the finish, a short error, and the return value (``_NO_VALUE`` when
    there is none to push), which is recorded with the final state.
    """
    task: BaseOperator | None = None
    try:
        dag = dagbag.get_dag(key.dag_id)
        task = dag.get_task(key.task_id)
        assert claim.run is not None
        ti = RuntimeTaskInstance(key, task, claim, hostname, access)
        context = build_context(ti, dag, claim.run, access)
        if isinstance(task, MappedOperator):  # this instance's own operator, with its element of the input
            context["task"] = ti.task = task = task.unmap(key.map_index, context)
        task = templating.rendered_copy(task, context)  # render per attempt: retries render afresh
        context["task"] = ti.task = task
        seen.update(task=task, context=context)
        timeout = task.execution_timeout.total_seconds() if task.execution_timeout else None
        with time_limit(timeout, arm_alarm=in_process, started=clock_start):
            result = task.execute(context)
        return attempts.Finish(TaskState.SUCCESS, utcnow()), "", _NO_VALUE if result is None else result
    except SkipTask as exc:
        log.info("Skipping task: %s", exc)
        return attempts.Finish(TaskState.SKIPPED, utcnow(), str(exc) or "skipped"), "", _NO_VALUE
    except RescheduleTask as exc:  # same try, slot freed: the scheduler queues it again when due
        log.info("Rescheduling task; next poke at %s", exc.reschedule_at.isoformat())
        return (attempts.Finish(TaskState.UP_FOR_RESCHEDULE, utcnow(), str(exc), exc.reschedule_at.astimezone(UTC)),
                "", _NO_VALUE)
    except Terminated as exc:
        log.warning("Attempt released: %s (worker shutdown); the delivery goes back to the queue", exc)
        return attempts.Finish(TaskState.QUEUED, utcnow(), f"released: {exc}"), str(exc), _NO_VALUE
    except (DagError, RabbitrunError) as exc:
        log.error("Task failed: %s", exc)
        return (attempts.failure_outcome(key.try_number, claim.max_tries, None, str(exc), utcnow(), retry=False),
                str(exc), _NO_VALUE)
    except Exception as exc:  # noqa: BLE001 - process boundary: user code may raise anything
        log.error("Task failed with exception\n%s", traceback.format_exc().rstrip())
        reason = f"{type(exc).__name__}: {exc}"
        retry = not isinstance(exc, FailTask)
        delay = task.retry_delay_for(key.try_number) if task is not None else timedelta(0)
        outcome = attempts.failure_outcome(key.try_number, claim.max_tries, delay, reason, utcnow(), retry=retry)
        if outcome.state == TaskState.UP_FOR_RETRY:
            log.info("Marking task as UP_FOR_RETRY; next try at %s", outcome.next_retry_at)
        return outcome, reason, _NO_VALUE
