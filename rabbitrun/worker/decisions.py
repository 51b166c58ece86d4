"""What the worker does with a delivery once its task process has ended: a pure function of how it
ended, so every case is a unit test (DESIGN rule 3). :mod:`rabbitrun.worker.consumer` performs it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rabbitrun.states import ATTEMPT_OUTCOMES, FINISHED_TASK_STATES, OutcomeKind, TaskState
from rabbitrun.worker.supervisor import ChildReport


class Action(StrEnum):
    PUBLISH_AND_ACK = "publish_and_ack"  # attempt finished and recorded by the child
    RECORD_AND_ACK = "record_and_ack"  # child died without recording: the parent records it
    ACK = "ack"  # duplicate or redelivery of an attempt already claimed or finished (rule 2)
    REQUEUE = "requeue"  # released on shutdown: another worker runs it
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str = ""
    release: bool = False  # REQUEUE after the parent puts the claimed attempt back to queued (same try)


def decide(report: ChildReport) -> Decision:
    """Pure: what to do with a delivery once its child has exited."""
    if report.fenced and (report.outcome is None or report.outcome.state == OutcomeKind.CRASHED):
        return Decision(Action.REQUEUE, f"released: the worker killed it, {report.fenced}", release=True)
    if report.stopped_for_shutdown and (report.outcome is None or report.outcome.state == OutcomeKind.CRASHED):
        # the worker's own shutdown ended it before it could release itself: never a task failure
        what = report.death_reason() if report.outcome is None else report.crash_reason()
        return Decision(Action.REQUEUE, f"released on worker shutdown ({what})", release=True)
    if report.outcome is None:
        return Decision(Action.RECORD_AND_ACK, report.death_reason())
    state, error = report.outcome.state, report.outcome.error
    if state == OutcomeKind.CRASHED:
        return Decision(Action.RECORD_AND_ACK, report.crash_reason())
    if state == OutcomeKind.REJECTED:
        return Decision(Action.DEAD_LETTER, error or "rejected")
    if state == OutcomeKind.DB_UNAVAILABLE:
        return Decision(Action.REQUEUE, error)
    if state == OutcomeKind.UNKNOWN:
        what = f" {error}" if error else ""
        return Decision(Action.DEAD_LETTER, f"unknown task instance{what}: no such DAG run / task in the metadata DB")
    if state == OutcomeKind.NOT_CLAIMED:
        return Decision(Action.ACK, error)
    if state == TaskState.QUEUED:
        return Decision(Action.REQUEUE, "released on worker shutdown")
    if state in {s.value for s in FINISHED_TASK_STATES | ATTEMPT_OUTCOMES}:
        # up_for_reschedule too: the attempt is durable and the scheduler sends a new envelope when due
        return Decision(Action.PUBLISH_AND_ACK)
    return Decision(Action.RECORD_AND_ACK, f"unexpected outcome {state!r}")
