"""Trigger rules as a table: every rule, its edges, and the "not finished" states."""

from __future__ import annotations

import pytest

from rabbitrun.authoring.trigger_rules import Decision, TriggerRule, evaluate
from rabbitrun.states import TaskState

S = TaskState.SUCCESS
F = TaskState.FAILED
UF = TaskState.UPSTREAM_FAILED
SK = TaskState.SKIPPED
RM = TaskState.REMOVED
R = TaskState.RUNNING
UR = TaskState.UP_FOR_RETRY
Q = TaskState.QUEUED
SC = TaskState.SCHEDULED
N = TaskState.NONE

RUN, WAIT, SKIP, UPF = Decision.RUN, Decision.WAIT, Decision.SKIP, Decision.UPSTREAM_FAILED

CASES: list[tuple[TriggerRule, list[TaskState], Decision]] = [
    # all_success
    (TriggerRule.ALL_SUCCESS, [S, S], RUN),
    (TriggerRule.ALL_SUCCESS, [S, R], WAIT),
    (TriggerRule.ALL_SUCCESS, [S, UR], WAIT),
    (TriggerRule.ALL_SUCCESS, [F, R], UPF),
    (TriggerRule.ALL_SUCCESS, [UF, S], UPF),
    (TriggerRule.ALL_SUCCESS, [SK, S], SKIP),
    (TriggerRule.ALL_SUCCESS, [SK, R], SKIP),
    (TriggerRule.ALL_SUCCESS, [SK, F], UPF),
    # all_failed
    (TriggerRule.ALL_FAILED, [F, UF], RUN),
    (TriggerRule.ALL_FAILED, [F, R], WAIT),
    (TriggerRule.ALL_FAILED, [F, S], SKIP),
    (TriggerRule.ALL_FAILED, [F, SK], SKIP),
    (TriggerRule.ALL_FAILED, [S, R], SKIP),
    (TriggerRule.ALL_FAILED, [F, RM], WAIT),
    # all_done
    (TriggerRule.ALL_DONE, [S, F, UF, SK, RM], RUN),
    (TriggerRule.ALL_DONE, [S, Q], WAIT),
    (TriggerRule.ALL_DONE, [F, UR], WAIT),
    # one_success
    (TriggerRule.ONE_SUCCESS, [S, R], RUN),
    (TriggerRule.ONE_SUCCESS, [F, R], WAIT),
    (TriggerRule.ONE_SUCCESS, [F, SK], UPF),
    (TriggerRule.ONE_SUCCESS, [UF, SK], UPF),
    (TriggerRule.ONE_SUCCESS, [SK, SK], SKIP),
    (TriggerRule.ONE_SUCCESS, [SK, RM], SKIP),
    # one_failed
    (TriggerRule.ONE_FAILED, [F, R], RUN),
    (TriggerRule.ONE_FAILED, [UF, S], RUN),
    (TriggerRule.ONE_FAILED, [S, R], WAIT),
    (TriggerRule.ONE_FAILED, [S, SK], SKIP),
    # none_failed
    (TriggerRule.NONE_FAILED, [S, SK], RUN),
    (TriggerRule.NONE_FAILED, [S, R], WAIT),
    (TriggerRule.NONE_FAILED, [F, R], UPF),
    (TriggerRule.NONE_FAILED, [UF, S], UPF),
    # none_skipped
    (TriggerRule.NONE_SKIPPED, [S, F], RUN),
    (TriggerRule.NONE_SKIPPED, [S, R], WAIT),
    (TriggerRule.NONE_SKIPPED, [SK, R], SKIP),
    # always
    (TriggerRule.ALWAYS, [R, N], RUN),
    (TriggerRule.ALWAYS, [F], RUN),
]


@pytest.mark.parametrize(("rule", "states", "expected"), CASES, ids=[f"{c[0]}-{'+'.join(c[1])}" for c in CASES])
def test_rule_decides_as_airflow_does(rule: TriggerRule, states: list[TaskState], expected: Decision) -> None:
    assert evaluate(rule, states) is expected


@pytest.mark.parametrize("rule", list(TriggerRule))
def test_task_without_upstream_runs_whatever_its_rule(rule: TriggerRule) -> None:
    assert evaluate(rule, []) is Decision.RUN


@pytest.mark.parametrize("rule", [r for r in TriggerRule if r is not TriggerRule.ALWAYS])
@pytest.mark.parametrize("pending", [N, SC, Q, R, UR])
def test_unfinished_upstream_makes_every_rule_but_always_wait(rule: TriggerRule, pending: TaskState) -> None:
    assert evaluate(rule, [pending]) is Decision.WAIT


def test_rule_given_as_plain_string_is_accepted() -> None:
    assert evaluate("one_success", [TaskState.SUCCESS]) is Decision.RUN


def test_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError):
        evaluate("some_success", [TaskState.SUCCESS])
