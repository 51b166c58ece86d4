"""Run ONE claimed attempt in this process: build the context, execute, have it recorded.

The worker claims the attempt and records its end; its forked task process runs
:func:`run_claimed` and reaches the worker over the task channel for everything
else (``rabbitrun.runner.link``): it holds no DB URL, no Fernet key, no broker
credentials. ``rabbitrun tasks run`` (:func:`run_attempt`) plays the worker's part
in one process, with the DB's own data access. The attempt's log file is written here.

Time limits: SIGTERM (sent by the worker at the soft limit, or by an alarm
armed here for in-process runs) raises :class:`TaskTimeout` inside the task
once its ``execution_timeout`` has passed, so the task may clean up. A SIGTERM
before that (worker shutdown) raises :class:`Terminated`, and the attempt is
released back to QUEUED so the requeued delivery can run it elsewhere.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rabbitrun.authoring import BaseOperator, DagBag, MappedOperator, current, templating
from rabbitrun.authoring.signals import FailTask, RescheduleTask, SkipTask
from rabbitrun.data import access as runtime
from rabbitrun.errors import DagError, RabbitrunError, XComError
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.logs import attempt_log
from rabbitrun.models import outcomes, xcom_values
from rabbitrun.models.outcomes import utcnow
from rabbitrun.names import TASK_LOGGER
from rabbitrun.protocol import ClaimedAttempt, FinishFrame
from rabbitrun.runner import execution
from rabbitrun.runner.context import RuntimeDagRun, RuntimeTaskInstance, build_context
from rabbitrun.runner.limits import Terminated, time_limit
from rabbitrun.runner.link import RemoteAccess, WorkerLink
from rabbitrun.secrets import SecretsMasker, reset_masker, use_masker
from rabbitrun.settings import Settings
from rabbitrun.states import TaskState

_NO_VALUE: Any = object()


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What the runner decided; the worker turns it into a result message."""

    key: TaskInstanceKey
    state: str  # a TaskState, or an OutcomeKind (not_claimed, unknown, db_unavailable)
    claimed: bool
    started_at: datetime | None
    ended_at: datetime | None
    error: str = ""

    @property
    def exit_code(self) -> int:
        return 0 if self.state in (TaskState.SUCCESS, TaskState.SKIPPED, TaskState.UP_FOR_RESCHEDULE) else 1


# --- the attempt ---------------------------------------------------------------------

#: Records how the attempt ended: (finish, short error, return value or _NO_VALUE) -> (the finish that
#: stands, its error, whether the record stands). The worker's over the task channel, or the DB's own.
Recorder = Callable[[outcomes.Finish, str, Any], tuple[outcomes.Finish, str, bool]]


def run_for_worker(
    settings: Settings,
    link: WorkerLink,
    dagbag: DagBag,
    key: TaskInstanceKey,
    claimed: ClaimedAttempt,
    *,
    hostname: str,
    clock_start: float,
) -> AttemptOutcome:
    """A worker's task process: run the attempt its worker claimed; data and the record go over ``link``."""
    masker = SecretsMasker()
    access = RemoteAccess(settings, link, key, masker)

    def record(finish: outcomes.Finish, error: str, value: Any) -> tuple[outcomes.Finish, str, bool]:
        finish, error, row = stored_value(access, key, finish, error, value)
        frame = FinishFrame(
            finish.state.value,
            claimed.started_at,
            finish.ended_at,
            reason=finish.reason or "",
            error=error,
            next_retry_at=finish.next_retry_at,
            value=row,
            skip=finish.skip,
        )
        reply = link.finish(frame)
        recorded = outcomes.Finish(TaskState(reply.state), finish.ended_at, reply.error or finish.reason)
        if recorded.state == finish.state:
            recorded = finish
        return (*failed_to_store(recorded, finish, error), reply.recorded)

    return run_claimed(settings, access, masker, dagbag, key, claimed, record, hostname, False, clock_start)


def run_claimed(
    settings: Settings,
    access: runtime.DataAccess,
    masker: SecretsMasker,
    dagbag: DagBag,
    key: TaskInstanceKey,
    claimed: ClaimedAttempt,
    record: Recorder,
    hostname: str,
    in_process: bool,
    clock_start: float,
) -> AttemptOutcome:
    """Run an attempt that is claimed: build its context, execute, have ``record`` record its end,
    then run its callback. Its reads and writes go through ``access``."""
    tokens = runtime.activate(access), use_masker(masker)
    try:
        started = claimed.started_at
        with attempt_log(settings, key, masker.filter()):
            log = logging.getLogger(TASK_LOGGER)
            log.info("Starting attempt %s of %s", key.try_number, key)
            seen: dict[str, Any] = {}  # the task and context, once built, for the callbacks
            finish, error, value = _execute(
                settings, access, dagbag, key, claimed, hostname, in_process, clock_start, log, seen
            )
            if finish.reason:  # `tasks states` shows the reason: it must not carry a secret either
                finish = dataclasses.replace(finish, reason=masker.redact(finish.reason))
            finish, error, recorded = record(finish, masker.redact(error), value)
            if recorded:
                log.info(
                    "Marking task as %s. dag_id=%s, task_id=%s, run_id=%s, start_date=%s, end_date=%s",
                    finish.state.upper(),
                    key.dag_id,
                    key.task_id,
                    key.run_id,
                    started.isoformat(),
                    finish.ended_at.isoformat(),
                )
                _run_callback(seen, finish.state, error, log)
            else:
                log.warning("Attempt %s was already decided elsewhere; keeping that decision", key)
        return AttemptOutcome(key, finish.state.value, True, started, finish.ended_at, masker.redact(error))
    finally:
        reset_masker(tokens[1])
        runtime.deactivate(tokens[0])


def stored_value(
    access: runtime.DataAccess, key: TaskInstanceKey, finish: outcomes.Finish, error: str, value: Any
) -> tuple[outcomes.Finish, str, tuple[bytes, str] | None]:
    """The return value as its XCom row, stored by the task's XCom backend (where the task runs:
    the backend may keep the value elsewhere); a value that cannot be stored fails the attempt."""
    if value is _NO_VALUE or finish.state != TaskState.SUCCESS:
        return finish, error, None
    try:
        return finish, error, access.xcom_backend.store(value, key=xcom_values.RETURN_VALUE, ti=key)
    except XComError as exc:
        logging.getLogger(TASK_LOGGER).error("Task failed: %s", exc)
        return outcomes.Finish(TaskState.FAILED, utcnow(), str(exc)), str(exc), None


def failed_to_store(recorded: outcomes.Finish, finish: outcomes.Finish, error: str) -> tuple[outcomes.Finish, str]:
    """The finish that stands and its error; the task log says so when the record failed the
    attempt instead (its return value was over the XCom size limit)."""
    if recorded.state == finish.state:
        return recorded, error
    logging.getLogger(TASK_LOGGER).error("Task failed: %s", recorded.reason)
    return recorded, recorded.reason or error


_CALLBACKS = {
    TaskState.SUCCESS: "on_success_callback",
    TaskState.FAILED: "on_failure_callback",
    TaskState.UP_FOR_RETRY: "on_retry_callback",
}


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
    except Exception:
        log.exception("%s of %s failed; the task outcome (%s) stands", name, task, state.value)


def _dag_folder(dagbag: DagBag, dag: Any) -> Path | None:
    """The folder of the DAG's file, where its template files are found (None if it has no file)."""
    try:
        return dagbag.resolve(dag.fileloc).parent if dag.fileloc else None
    except DagError:
        return None


def _execute(
    settings: Settings,
    access: runtime.DataAccess,
    dagbag: DagBag,
    key: TaskInstanceKey,
    claimed: ClaimedAttempt,
    hostname: str,
    in_process: bool,
    clock_start: float,
    log: logging.Logger,
    seen: dict[str, Any],
) -> tuple[outcomes.Finish, str, Any]:
    """Run the operator; every way it can end becomes a Finish (a process boundary).

    Returns the finish, a short error, and the return value (``_NO_VALUE`` when
    there is none to push), which is recorded with the final state.
    """
    task: BaseOperator | None = None
    try:
        dag = dagbag.get_dag(key.dag_id)
        task = dag.get_task(key.task_id)
        ti = RuntimeTaskInstance(key, task, claimed, hostname, access)
        context = build_context(ti, dag, RuntimeDagRun(claimed.run), access, settings)
        if isinstance(task, MappedOperator):  # this instance's own operator, with its element of the input
            context["expanded_ti_count"] = len(
                access.mapped_indexes(key.dag_id, key.run_id, [key.task_id]).get(key.task_id, [])
            )
            context["task"] = ti.task = task = task.unmap(key.map_index, context)
        env = templating.environment(dag, _dag_folder(dagbag, dag))
        task = templating.rendered_copy(task, context, env)  # render per attempt: retries render afresh
        context["task"] = ti.task = task
        seen.update(task=task, context=context)
        timeout = task.execution_timeout.total_seconds() if task.execution_timeout else None
        with time_limit(timeout, arm_alarm=in_process, started=clock_start), current.running(context):
            result = execution.execute(task, context)
        skip = tuple(ti.skipped_downstream)
        return outcomes.Finish(TaskState.SUCCESS, utcnow(), skip=skip), "", _NO_VALUE if result is None else result
    except SkipTask as exc:
        log.info("Skipping task: %s", exc)
        return outcomes.Finish(TaskState.SKIPPED, utcnow(), str(exc) or "skipped"), "", _NO_VALUE
    except RescheduleTask as exc:  # same try, slot freed: the scheduler queues it again when due
        log.info("Rescheduling task; next poke at %s", exc.reschedule_at.isoformat())
        return (
            outcomes.Finish(TaskState.UP_FOR_RESCHEDULE, utcnow(), str(exc), exc.reschedule_at.astimezone(UTC)),
            "",
            _NO_VALUE,
        )
    except Terminated as exc:
        log.warning("Attempt released: %s (worker shutdown); the delivery goes back to the queue", exc)
        return outcomes.Finish(TaskState.QUEUED, utcnow(), f"released: {exc}"), str(exc), _NO_VALUE
    except (DagError, RabbitrunError) as exc:
        log.error("Task failed: %s", exc)
        return (
            outcomes.failure_outcome(key.try_number, claimed.max_tries, None, str(exc), utcnow(), retry=False),
            str(exc),
            _NO_VALUE,
        )
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - process boundary: user code may raise anything
        # sys.exit("...") fails the attempt like an exception: its text is masked with the rest
        log.error("Task failed with exception\n%s", traceback.format_exc().rstrip())
        reason = f"{type(exc).__name__}: {exc}"
        retry = not isinstance(exc, FailTask)
        delay = task.retry_delay_for(key.try_number) if task is not None else timedelta(0)
        outcome = outcomes.failure_outcome(key.try_number, claimed.max_tries, delay, reason, utcnow(), retry=retry)
        if outcome.state == TaskState.UP_FOR_RETRY:
            log.info("Marking task as UP_FOR_RETRY; next try at %s", outcome.next_retry_at)
        return outcome, reason, _NO_VALUE
