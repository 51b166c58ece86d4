"""Task instance and DAG run states, which of them are final, the allowed task state changes, and the
kinds of outcome a task process reports instead of a state."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class TaskState(StrEnum):
    """Airflow's task instance states, spelled as Airflow spells them."""

    NONE = "none"  # created with the run, not yet considered
    SCHEDULED = "scheduled"  # dependencies met, about to be published
    QUEUED = "queued"  # the broker confirmed its envelope (DESIGN rule 1)
    RUNNING = "running"  # an attempt claimed it (DESIGN rule 2)
    SUCCESS = "success"
    FAILED = "failed"
    UP_FOR_RETRY = "up_for_retry"
    # a sensor in reschedule mode between pokes: same try_number, no worker slot held, due at next_retry_at
    UP_FOR_RESCHEDULE = "up_for_reschedule"
    UPSTREAM_FAILED = "upstream_failed"
    SKIPPED = "skipped"
    REMOVED = "removed"


class OutcomeKind(StrEnum):
    """How a task process ended its delivery without reaching a task state: the ``state`` of its
    outcome frame is one of these or a :class:`TaskState`. The task process writes them, the
    worker's :func:`rabbitrun.worker.decisions.decide` turns each into ack, requeue or dead-letter."""

    NOT_CLAIMED = "not_claimed"  # the attempt is claimed or finished already: never run twice (ack)
    UNKNOWN = "unknown"  # no such task instance in the metadata DB (dead-letter)
    DB_UNAVAILABLE = "db_unavailable"  # the claim could not reach the DB (requeue)
    REJECTED = "rejected"  # its DAG file or task cannot be loaded (dead-letter)
    CRASHED = "crashed"  # the task process failed outside the runner; the error is its traceback


class DagRunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


#: States after which a task instance will not run again without being cleared.
FINISHED_TASK_STATES = frozenset(
    {TaskState.SUCCESS, TaskState.FAILED, TaskState.UPSTREAM_FAILED, TaskState.SKIPPED, TaskState.REMOVED}
)

#: States a worker may claim an attempt from.
CLAIMABLE_STATES = frozenset({TaskState.QUEUED, TaskState.SCHEDULED})

#: Waiting states that become ready again once their ``next_retry_at`` has passed. A retry
#: takes a new try_number when queued; a reschedule keeps its try (the attempt continues).
DUE_STATES = frozenset({TaskState.UP_FOR_RETRY, TaskState.UP_FOR_RESCHEDULE})

#: How an attempt may end, as the runner records it (RUNNING -> one of these).
ATTEMPT_OUTCOMES = frozenset(
    {TaskState.SUCCESS, TaskState.FAILED, TaskState.SKIPPED, TaskState.UP_FOR_RETRY, TaskState.UP_FOR_RESCHEDULE}
)

#: Task states that count as "not failed" for trigger rules such as none_failed.
SUCCESS_LIKE = frozenset({TaskState.SUCCESS, TaskState.SKIPPED})

FINISHED_RUN_STATES = frozenset({DagRunState.SUCCESS, DagRunState.FAILED})

_MANUAL = (TaskState.SUCCESS, TaskState.FAILED)  # `tasks mark` sets either, from any state

#: Every change of a task instance's state the code makes, from -> to, and no other (DESIGN rule 8).
#: :mod:`rabbitrun.models.transitions` makes all of them, each by compare-and-set, and refuses a pair
#: missing here (InvalidTransition); tests/unit/test_state_writes.py checks that this table is exactly
#: what that module can do. Manual changes (`tasks mark`, `dags mark`, `tasks clear`, `tasks run`)
#: reach most states; the automatic ones are the first entries of each set. Creating a task instance
#: (state none, with its run or a mapped task's expansion) is an insert, not a change.
TRANSITIONS: Mapping[TaskState, frozenset[TaskState]] = MappingProxyType(
    {
        TaskState.NONE: frozenset(
            {
                TaskState.QUEUED,  # ready: queued with a new try (try_number + 1); `tasks run` does the same
                TaskState.SKIPPED,  # its trigger rule, an upstream branch, mapped over [], its run marked failed
                TaskState.UPSTREAM_FAILED,  # its trigger rule, after an upstream failure
                TaskState.FAILED,  # its mapped input is not a list or too long; its pool does not exist; by hand
                TaskState.SUCCESS,  # by hand
                TaskState.NONE,  # cleared while none: its dates and reason are reset
            }
        ),
        TaskState.SCHEDULED: frozenset(
            {
                TaskState.QUEUED,  # published again, same try (its earlier envelope is gone)
                TaskState.RUNNING,  # claimed by an older envelope of the same try that is still delivered
                TaskState.FAILED,  # its pool does not exist; by hand
                TaskState.SUCCESS,  # by hand
                TaskState.SKIPPED,  # its run is marked failed; an upstream branch skips it
                TaskState.NONE,  # cleared
            }
        ),
        TaskState.QUEUED: frozenset(
            {
                TaskState.RUNNING,  # the claim (DESIGN rule 2)
                # the publish failed, it sat unclaimed past task_queued_timeout_s ("requeue"), or a worker
                # shutting down could not republish an early-acked delivery: the scheduler publishes it again
                TaskState.SCHEDULED,
                TaskState.FAILED,  # unroutable; stuck in queued ("fail"); by hand
                TaskState.SUCCESS,  # by hand
                TaskState.SKIPPED,  # its run is marked failed
            }
        ),
        TaskState.RUNNING: frozenset(
            {
                TaskState.RUNNING,  # a claim retried after its commit's answer was lost wins again (same host/pid)
                TaskState.SUCCESS,
                TaskState.FAILED,
                TaskState.SKIPPED,
                TaskState.UP_FOR_RETRY,  # the attempt's outcome
                TaskState.UP_FOR_RESCHEDULE,  # a sensor in reschedule mode: same try, its slot freed
                # released on warm shutdown: its requeued delivery claims it again (same try); `tasks run` (new try)
                TaskState.QUEUED,
                TaskState.SCHEDULED,  # its lease expired (its worker is gone): published again, same try
            }
        ),
        TaskState.UP_FOR_RETRY: frozenset(
            {
                TaskState.QUEUED,  # due: queued with the next try (there is no SCHEDULED step in between)
                TaskState.FAILED,  # its pool does not exist; by hand
                TaskState.SUCCESS,  # by hand
                TaskState.SKIPPED,  # its run is marked failed
                TaskState.NONE,  # cleared
            }
        ),
        TaskState.UP_FOR_RESCHEDULE: frozenset(
            {
                TaskState.QUEUED,  # the sensor's next poke is due: same try
                TaskState.FAILED,  # its pool does not exist; by hand
                TaskState.SUCCESS,  # by hand
                TaskState.SKIPPED,  # its run is marked failed
                TaskState.NONE,  # cleared
            }
        ),
        # finished: only by hand. Cleared -> none (the next queueing takes a new try); `tasks run` -> queued
        # with a new try; marked. A failed or upstream_failed downstream of a task marked by hand goes back
        # to none as well. Nothing sets REMOVED today (a cleared mapped task's extra instances are deleted).
        TaskState.SUCCESS: frozenset({TaskState.NONE, TaskState.QUEUED, *_MANUAL}),
        TaskState.FAILED: frozenset({TaskState.NONE, TaskState.QUEUED, *_MANUAL}),
        TaskState.UPSTREAM_FAILED: frozenset({TaskState.NONE, TaskState.QUEUED, *_MANUAL}),
        TaskState.SKIPPED: frozenset({TaskState.NONE, TaskState.QUEUED, *_MANUAL}),
        TaskState.REMOVED: frozenset({TaskState.NONE, TaskState.QUEUED, *_MANUAL}),
    }
)


def allowed(from_: TaskState | str, to: TaskState | str) -> bool:
    """Whether TRANSITIONS allows a task instance in ``from_`` to change to ``to``."""
    try:
        return TaskState(to) in TRANSITIONS.get(TaskState(from_), frozenset())
    except ValueError:  # not a task state at all
        return False
