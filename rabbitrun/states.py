"""Task instance and DAG run states, and which of them are final."""

from __future__ import annotations

from enum import StrEnum


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
