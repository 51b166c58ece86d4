"""Trigger rules: when a task may run, given the states of its upstream tasks.

:func:`evaluate` is a pure function so the scheduler's readiness decision can
be tested as a table, without a database or a broker.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from rabbitrun.states import FINISHED_TASK_STATES, TaskState

__all__ = ["Decision", "TriggerRule", "evaluate"]


class TriggerRule(StrEnum):
    """Airflow's trigger rules, spelled as Airflow spells them."""

    ALL_SUCCESS = "all_success"
    ALL_FAILED = "all_failed"
    ALL_DONE = "all_done"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"
    NONE_FAILED = "none_failed"
    NONE_SKIPPED = "none_skipped"
    ALWAYS = "always"


class Decision(StrEnum):
    """What the scheduler should do with a task instance whose rule was evaluated."""

    WAIT = "wait"  # some upstream is not finished and could still change the outcome
    RUN = "run"
    SKIP = "skip"
    UPSTREAM_FAILED = "upstream_failed"


_FAILED = frozenset({TaskState.FAILED, TaskState.UPSTREAM_FAILED})


def _all_finished(states: Sequence[TaskState]) -> bool:
    return all(s in FINISHED_TASK_STATES for s in states)


def _all_success(states: Sequence[TaskState]) -> Decision:
    if any(s in _FAILED for s in states):
        return Decision.UPSTREAM_FAILED
    if TaskState.SKIPPED in states:
        return Decision.SKIP
    if all(s == TaskState.SUCCESS for s in states):
        return Decision.RUN
    return Decision.WAIT


def _all_failed(states: Sequence[TaskState]) -> Decision:
    if any(s in (TaskState.SUCCESS, TaskState.SKIPPED) for s in states):
        return Decision.SKIP
    if _all_finished(states) and all(s in _FAILED for s in states):
        return Decision.RUN
    return Decision.WAIT


def _all_done(states: Sequence[TaskState]) -> Decision:
    return Decision.RUN if _all_finished(states) else Decision.WAIT


def _one_success(states: Sequence[TaskState]) -> Decision:
    if TaskState.SUCCESS in states:
        return Decision.RUN
    if not _all_finished(states):
        return Decision.WAIT
    return Decision.UPSTREAM_FAILED if any(s in _FAILED for s in states) else Decision.SKIP


def _one_failed(states: Sequence[TaskState]) -> Decision:
    if any(s in _FAILED for s in states):
        return Decision.RUN
    return Decision.SKIP if _all_finished(states) else Decision.WAIT


def _none_failed(states: Sequence[TaskState]) -> Decision:
    if any(s in _FAILED for s in states):
        return Decision.UPSTREAM_FAILED
    return Decision.RUN if _all_finished(states) else Decision.WAIT


def _none_skipped(states: Sequence[TaskState]) -> Decision:
    if TaskState.SKIPPED in states:
        return Decision.SKIP
    return Decision.RUN if _all_finished(states) else Decision.WAIT


def _always(states: Sequence[TaskState]) -> Decision:
    return Decision.RUN


_RULES = {
    TriggerRule.ALL_SUCCESS: _all_success,
    TriggerRule.ALL_FAILED: _all_failed,
    TriggerRule.ALL_DONE: _all_done,
    TriggerRule.ONE_SUCCESS: _one_success,
    TriggerRule.ONE_FAILED: _one_failed,
    TriggerRule.NONE_FAILED: _none_failed,
    TriggerRule.NONE_SKIPPED: _none_skipped,
    TriggerRule.ALWAYS: _always,
}


def evaluate(rule: TriggerRule | str, upstream_states: Sequence[TaskState]) -> Decision:
    """Decide what to do with a task given its upstream states (Airflow semantics).

    A task with no upstream always runs. States that are not final
    (NONE, SCHEDULED, QUEUED, RUNNING, UP_FOR_RETRY) count as not finished, so a
    rule that needs them answers WAIT.
    """
    if not upstream_states:
        return Decision.RUN
    states = [TaskState(s) for s in upstream_states]
    return _RULES[TriggerRule(rule)](states)
