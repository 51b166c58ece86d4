"""What the worker does with a delivery once its task child has ended: decide() is pure (DESIGN rule 3)."""

from __future__ import annotations

from typing import Any

import pytest

from rabbitrun.protocol import OutcomeFrame
from rabbitrun.states import OutcomeKind
from rabbitrun.worker.decisions import Action, Decision, decide
from rabbitrun.worker.supervisor import ChildReport


def _report(state: str | None = None, exit_status: int | None = 0, timed_out: str = "", **outcome: Any) -> ChildReport:
    frame = None if state is None else OutcomeFrame("1", state, **outcome)
    return ChildReport(envelope_id="e1", outcome=frame, exit_status=exit_status, pid=4321, timed_out=timed_out)


# --- ChildReport.death_reason ---------------------------------------------------------


def test_death_reason_of_a_sigkilled_child_names_sigkill() -> None:
    reason = _report(exit_status=-9).death_reason()
    assert "SIGKILL" in reason and "killed" in reason


def test_death_reason_of_a_child_killed_by_another_signal_names_that_signal() -> None:
    assert "SIGSEGV" in _report(exit_status=-11).death_reason()
    assert "SIGTERM" in _report(exit_status=-15).death_reason()


def test_death_reason_after_the_hard_time_limit_says_so() -> None:
    reason = _report(exit_status=-9, timed_out="hard").death_reason()
    assert "hard time limit" in reason and "SIGKILL" in reason


def test_death_reason_of_a_plain_exit_names_the_exit_code() -> None:
    reason = _report(exit_status=3).death_reason()
    assert "exited with code 3" in reason and "without reporting an outcome" in reason


def test_report_state_is_the_outcome_frames_state_or_none() -> None:
    assert _report().state is None
    assert _report("success").state == "success"


# --- decide ---------------------------------------------------------------------------


def test_child_that_died_without_an_outcome_is_recorded_by_the_parent_then_acked() -> None:
    decision = decide(_report(None, exit_status=-9))
    assert decision.action == Action.RECORD_AND_ACK
    assert "SIGKILL" in decision.reason


def test_child_killed_at_the_hard_limit_is_recorded_with_the_time_limit_reason() -> None:
    decision = decide(_report(None, exit_status=-9, timed_out="hard"))
    assert decision == Decision(Action.RECORD_AND_ACK, "hard time limit exceeded: task process killed with SIGKILL")


def test_child_that_crashed_is_recorded_by_the_parent_then_acked() -> None:
    decision = decide(_report("crashed", exit_status=70, error="Traceback ...\nMemoryError\n"))
    assert decision.action == Action.RECORD_AND_ACK
    assert "70" in decision.reason


def test_crashed_child_reason_carries_the_error_it_reported() -> None:
    decision = decide(_report("crashed", exit_status=70, error="Traceback ...\nMemoryError\n"))
    assert "MemoryError" in decision.reason
    assert "without reporting an outcome" not in decision.reason and "Traceback" not in decision.reason


def test_rejected_envelope_is_dead_lettered_with_the_childs_error() -> None:
    error = "DAG file path escapes the dags folder: '../x.py'"
    decision = decide(_report("rejected", exit_status=2, error=error))
    assert decision == Decision(Action.DEAD_LETTER, error)


def test_rejected_without_an_error_is_dead_lettered_as_rejected() -> None:
    assert decide(_report("rejected", exit_status=2)) == Decision(Action.DEAD_LETTER, "rejected")


def test_unknown_task_instance_is_dead_lettered_with_a_reason() -> None:
    decision = decide(_report("unknown", exit_status=0))
    assert decision.action == Action.DEAD_LETTER
    assert "unknown task instance" in decision.reason


def test_attempt_already_claimed_or_finished_is_acked_without_running_again() -> None:
    decision = decide(_report("not_claimed", exit_status=0, error="attempt is running elsewhere"))
    assert decision == Decision(Action.ACK, "attempt is running elsewhere")


def test_attempt_released_on_shutdown_is_requeued() -> None:
    decision = decide(_report("queued", exit_status=0))
    assert decision.action == Action.REQUEUE and "shutdown" in decision.reason


def test_database_unavailable_is_requeued_with_its_error() -> None:
    decision = decide(_report("db_unavailable", exit_status=0, error="cannot use the metadata database"))
    assert decision == Decision(Action.REQUEUE, "cannot use the metadata database")


@pytest.mark.parametrize("state", ["success", "failed", "up_for_retry", "skipped", "upstream_failed", "removed"])
def test_attempt_finished_and_recorded_by_the_child_is_published_then_acked(state: str) -> None:
    assert decide(_report(state, exit_status=0)).action == Action.PUBLISH_AND_ACK


def test_rescheduled_sensor_attempt_is_published_then_acked_freeing_its_slot() -> None:
    """up_for_reschedule is durable in the DB; the scheduler sends a new envelope when it is due."""
    assert decide(_report("up_for_reschedule", exit_status=0)) == Decision(Action.PUBLISH_AND_ACK)


def test_finished_outcome_is_published_even_when_the_child_exit_status_is_not_yet_known() -> None:
    """on_reported() decides as soon as the outcome frame arrives, before the exit frame."""
    assert decide(_report("success", exit_status=None)).action == Action.PUBLISH_AND_ACK


@pytest.mark.parametrize("state", ["running", "scheduled", "bogus"])
def test_unexpected_outcome_is_recorded_by_the_parent_and_named_in_the_reason(state: str) -> None:
    decision = decide(_report(state, exit_status=0))
    assert decision.action == Action.RECORD_AND_ACK and repr(state) in decision.reason


def test_decide_is_pure_and_repeatable() -> None:
    report = _report("success")
    assert decide(report) == decide(report)
    assert report.outcome == OutcomeFrame("1", "success")


# --- the worker's own shutdown (cold shutdown, or the warm shutdown's timeout) -----------------


@pytest.mark.parametrize(
    "report",
    [
        ChildReport(envelope_id="e1", exit_status=-15, pid=1, stopped_for_shutdown=True),  # before its handler
        ChildReport(envelope_id="e1", exit_status=-9, pid=1, stopped_for_shutdown=True),  # SIGKILL after grace
        ChildReport(
            envelope_id="e1",
            outcome=OutcomeFrame("1", OutcomeKind.CRASHED, error="Traceback...\nSystemExit: 1"),
            exit_status=1,
            stopped_for_shutdown=True,
        ),
    ],
    ids=["sigterm-unhandled", "sigkill", "crashed"],
)
def test_a_child_the_worker_stopped_for_its_shutdown_is_released_never_failed(report: ChildReport) -> None:
    decision = decide(report)
    assert decision.action == Action.REQUEUE and decision.release
    assert decision.reason.startswith("released on worker shutdown")


def test_a_child_that_ended_on_its_own_during_shutdown_keeps_its_outcome() -> None:
    done = ChildReport(envelope_id="e1", outcome=OutcomeFrame("1", "success"), exit_status=0, stopped_for_shutdown=True)
    assert decide(done) == Decision(Action.PUBLISH_AND_ACK)
    released = ChildReport(envelope_id="e1", outcome=OutcomeFrame("1", "queued"), stopped_for_shutdown=True)
    assert decide(released) == Decision(Action.REQUEUE, "released on worker shutdown")  # it released itself


def test_a_sigterm_death_outside_a_shutdown_is_still_recorded_as_the_tasks_end() -> None:
    assert decide(_report(None, exit_status=-15)).action == Action.RECORD_AND_ACK


def test_a_child_killed_by_self_fencing_is_released_never_failed() -> None:
    fenced = ChildReport(envelope_id="e1", exit_status=-9, pid=1, fenced="its lease could not be renewed for 8s")
    decision = decide(fenced)
    assert decision.action == Action.REQUEUE and decision.release
    assert "lease could not be renewed" in decision.reason
