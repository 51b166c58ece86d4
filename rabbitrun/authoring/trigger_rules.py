"""Trigger rules: when a task may run, given the states of its upstream tasks.

:func:`evaluate` is a pure function so the scheduler's readiness decision can
be tested as a table, without a database or a broker. The rules and what they
decide follow Airflow 2.10 / 3.x (``TriggerRuleDep``): a rule answers WAIT while
an unfinished upstream could still change its outcome, and settles a task as
SKIP or UPSTREAM_FAILED as soon as its outcome can no longer be RUN.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from enum import StrEnum

from rabbitrun.states import FINISHED_TASK_STATES, TaskState

__all__ = ["Decision", "TriggerRule", "evaluate", "trigger_rule"]


class TriggerRule(StrEnum):
    """Airflow's trigger rules, spelled as Airflow spells them."""

    ALL_SUCCESS = "all_success"
    ALL_FAILED = "all_failed"
    ALL_DONE = "all_done"
    ALL_DONE_SETUP_SUCCESS = "all_done_setup_success"  # teardown tasks (Airflow 2.7+)
    ALL_DONE_MIN_ONE_SUCCESS = "all_done_min_one_success"  # Airflow 3.x
    ALL_SKIPPED = "all_skipped"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"
    ONE_DONE = "one_done"
    NONE_FAILED = "none_failed"
    NONE_FAILED_MIN_ONE_SUCCESS = "none_failed_min_one_success"
    NONE_FAILED_OR_SKIPPED = "none_failed_or_skipped"  # deprecated alias of none_failed_min_one_success
    NONE_SKIPPED = "none_skipped"
    ALWAYS = "always"
    DUMMY = "dummy"  # Airflow's old name of always


class Decision(StrEnum):
    """What the scheduler should do with a task instance whose rule was evaluated."""

    WAIT = "wait"  # some upstream is not finished and could still change the outcome
    RUN = "run"
    SKIP = "skip"
    UPSTREAM_FAILED = "upstream_failed"


class _Counts:
    """How many upstream instances are in each state: what every rule reads."""

    def __init__(self, states: Sequence[TaskState]) -> None:
        counts = Counter(states)
        self.total = len(states)
        self.success = counts[TaskState.SUCCESS]
        self.failed = counts[TaskState.FAILED]
        self.upstream_failed = counts[TaskState.UPSTREAM_FAILED]
        self.skipped = counts[TaskState.SKIPPED]
        self.done = sum(n for state, n in counts.items() if state in FINISHED_TASK_STATES)
        self.all_done = self.done == self.total

    @property
    def any_failed(self) -> bool:
        return bool(self.failed or self.upstream_failed)


def _all_success(c: _Counts) -> Decision:
    if c.any_failed:
        return Decision.UPSTREAM_FAILED
    if c.skipped:
        return Decision.SKIP
    return Decision.RUN if c.success == c.total else Decision.WAIT


def _all_failed(c: _Counts) -> Decision:
    if c.success or c.skipped:
        return Decision.SKIP
    return Decision.RUN if c.failed + c.upstream_failed == c.total else Decision.WAIT


def _all_done(c: _Counts) -> Decision:
    return Decision.RUN if c.all_done else Decision.WAIT


def _all_done_min_one_success(c: _Counts) -> Decision:
    if not c.all_done:
        return Decision.WAIT
    if c.success:
        return Decision.RUN
    return Decision.UPSTREAM_FAILED if c.any_failed else Decision.SKIP


def _all_skipped(c: _Counts) -> Decision:
    if c.success or c.any_failed:
        return Decision.SKIP
    return Decision.RUN if c.skipped == c.total else Decision.WAIT


def _one_success(c: _Counts) -> Decision:
    if c.success:
        return Decision.RUN
    if not c.all_done:
        return Decision.WAIT
    return Decision.SKIP if c.skipped == c.done else Decision.UPSTREAM_FAILED


def _one_failed(c: _Counts) -> Decision:
    if c.any_failed:
        return Decision.RUN
    return Decision.SKIP if c.all_done else Decision.WAIT


def _one_done(c: _Counts) -> Decision:
    """Runs once one upstream succeeded or failed; upstream_failed and skipped do not count."""
    if c.success or c.failed:
        return Decision.RUN
    return Decision.SKIP if c.all_done else Decision.WAIT


def _none_failed(c: _Counts) -> Decision:
    if c.any_failed:
        return Decision.UPSTREAM_FAILED
    return Decision.RUN if c.all_done else Decision.WAIT


def _none_failed_min_one_success(c: _Counts) -> Decision:
    if c.any_failed:
        return Decision.UPSTREAM_FAILED
    if c.skipped == c.total:
        return Decision.SKIP
    return Decision.RUN if c.all_done else Decision.WAIT


def _none_skipped(c: _Counts) -> Decision:
    if c.skipped:
        return Decision.SKIP
    return Decision.RUN if c.all_done else Decision.WAIT


def _always(c: _Counts) -> Decision:
    return Decision.RUN


_RULES: dict[TriggerRule, Callable[[_Counts], Decision]] = {
    TriggerRule.ALL_SUCCESS: _all_success,
    TriggerRule.ALL_FAILED: _all_failed,
    TriggerRule.ALL_DONE: _all_done,
    TriggerRule.ALL_DONE_SETUP_SUCCESS: _all_done,  # and its setups: see evaluate
    TriggerRule.ALL_DONE_MIN_ONE_SUCCESS: _all_done_min_one_success,
    TriggerRule.ALL_SKIPPED: _all_skipped,
    TriggerRule.ONE_SUCCESS: _one_success,
    TriggerRule.ONE_FAILED: _one_failed,
    TriggerRule.ONE_DONE: _one_done,
    TriggerRule.NONE_FAILED: _none_failed,
    TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS: _none_failed_min_one_success,
    TriggerRule.NONE_FAILED_OR_SKIPPED: _none_failed_min_one_success,
    TriggerRule.NONE_SKIPPED: _none_skipped,
    TriggerRule.ALWAYS: _always,
    TriggerRule.DUMMY: _always,
}


def _setups_decide(setup_states: Sequence[TaskState]) -> Decision | None:
    """all_done_setup_success: once everything upstream is done, a teardown whose setups were all
    skipped is skipped, one none of whose setups succeeded is upstream_failed (Airflow's rule)."""
    if not setup_states:
        return None
    setups = _Counts(setup_states)
    if setups.skipped == setups.total:
        return Decision.SKIP
    if not setups.success:
        return Decision.UPSTREAM_FAILED
    return None


def evaluate(
    rule: TriggerRule | str,
    upstream_states: Sequence[TaskState],
    setup_states: Sequence[TaskState] = (),
) -> Decision:
    """Decide what to do with a task given its upstream states (Airflow semantics).

    A task with no upstream always runs. States that are not final
    (NONE, SCHEDULED, QUEUED, RUNNING, UP_FOR_RETRY, ...) count as not finished, so a
    rule that needs them answers WAIT. ``setup_states`` are those of the upstream setup
    tasks (a subset of ``upstream_states``), read by ``all_done_setup_success`` only.
    """
    if not upstream_states:
        return Decision.RUN
    rule = TriggerRule(rule)
    counts = _Counts([TaskState(s) for s in upstream_states])
    decision = _RULES[rule](counts)
    if rule == TriggerRule.ALL_DONE_SETUP_SUCCESS and decision == Decision.RUN:
        return _setups_decide([TaskState(s) for s in setup_states]) or Decision.RUN
    return decision


def trigger_rule(value: TriggerRule | str) -> TriggerRule:
    """A task's ``trigger_rule`` argument as a rule; ValueError names the valid ones. The deprecated
    ``none_failed_or_skipped`` warns, as in Airflow, and means none_failed_min_one_success."""
    try:
        rule = TriggerRule(value)
    except ValueError:
        valid = ", ".join(r.value for r in TriggerRule)
        raise ValueError(f"unknown trigger_rule {value!r}; valid: {valid}") from None
    if rule == TriggerRule.NONE_FAILED_OR_SKIPPED:
        warnings.warn(
            "trigger_rule 'none_failed_or_skipped' is deprecated; use 'none_failed_min_one_success'",
            DeprecationWarning,
            stacklevel=4,
        )
    return rule
