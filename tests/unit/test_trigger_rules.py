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
    (TriggerRule.ONE_SUCCESS, [SK, RM], UPF),  # Airflow: skipped only when every finished upstream skipped
    (TriggerRule.ONE_SUCCESS, [SK, R], WAIT),
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
    # always, and its old name dummy
    (TriggerRule.ALWAYS, [R, N], RUN),
    (TriggerRule.ALWAYS, [F], RUN),
    (TriggerRule.DUMMY, [R, UF], RUN),
    # none_failed_min_one_success: the join after a branch
    (TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, [S, SK], RUN),
    (TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, [SK, SK], SKIP),
    (TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, [SK, R], WAIT),
    (TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, [F, R], UPF),
    (TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, [UF, SK], UPF),
    (TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, [S, S], RUN),
    (TriggerRule.NONE_FAILED_OR_SKIPPED, [S, SK], RUN),  # the deprecated alias decides the same
    (TriggerRule.NONE_FAILED_OR_SKIPPED, [SK, SK], SKIP),
    # all_skipped
    (TriggerRule.ALL_SKIPPED, [SK, SK], RUN),
    (TriggerRule.ALL_SKIPPED, [SK, R], WAIT),
    (TriggerRule.ALL_SKIPPED, [SK, S], SKIP),
    (TriggerRule.ALL_SKIPPED, [F, R], SKIP),
    (TriggerRule.ALL_SKIPPED, [UF, SK], SKIP),
    # one_done: one success or failure; upstream_failed and skipped do not count
    (TriggerRule.ONE_DONE, [S, R], RUN),
    (TriggerRule.ONE_DONE, [F, R], RUN),
    (TriggerRule.ONE_DONE, [UF, R], WAIT),
    (TriggerRule.ONE_DONE, [SK, R], WAIT),
    (TriggerRule.ONE_DONE, [SK, UF], SKIP),
    # all_done_min_one_success (Airflow 3)
    (TriggerRule.ALL_DONE_MIN_ONE_SUCCESS, [S, F], RUN),
    (TriggerRule.ALL_DONE_MIN_ONE_SUCCESS, [S, R], WAIT),
    (TriggerRule.ALL_DONE_MIN_ONE_SUCCESS, [F, SK], UPF),
    (TriggerRule.ALL_DONE_MIN_ONE_SUCCESS, [SK, SK], SKIP),
    # all_done_setup_success without setups upstream: all_done
    (TriggerRule.ALL_DONE_SETUP_SUCCESS, [S, F], RUN),
    (TriggerRule.ALL_DONE_SETUP_SUCCESS, [F, R], WAIT),
]

#: all_done_setup_success, the teardown's rule: (upstream states, of which its setups' states, decision)
SETUP_CASES: list[tuple[list[TaskState], list[TaskState], Decision]] = [
    ([S, F], [S], RUN),  # the work failed, its setup succeeded: the teardown runs
    ([S, S], [S], RUN),
    ([S, R], [S], WAIT),  # everything upstream must be done first
    ([F, UF], [F], UPF),  # its setup failed: nothing to tear down
    ([SK, SK], [SK], SKIP),  # its setups were all skipped
    ([S, F, UF], [S, F], RUN),  # one of its setups ran
    ([SK, UF], [SK, UF], UPF),
]


@pytest.mark.parametrize(("rule", "states", "expected"), CASES, ids=[f"{c[0]}-{'+'.join(c[1])}" for c in CASES])
def test_rule_decides_as_airflow_does(rule: TriggerRule, states: list[TaskState], expected: Decision) -> None:
    assert evaluate(rule, states) is expected


@pytest.mark.parametrize("rule", list(TriggerRule))
def test_task_without_upstream_runs_whatever_its_rule(rule: TriggerRule) -> None:
    assert evaluate(rule, []) is Decision.RUN


@pytest.mark.parametrize("rule", [r for r in TriggerRule if r not in (TriggerRule.ALWAYS, TriggerRule.DUMMY)])
@pytest.mark.parametrize("pending", [N, SC, Q, R, UR])
def test_unfinished_upstream_makes_every_rule_but_always_wait(rule: TriggerRule, pending: TaskState) -> None:
    assert evaluate(rule, [pending]) is Decision.WAIT


def test_rule_given_as_plain_string_is_accepted() -> None:
    assert evaluate("one_success", [TaskState.SUCCESS]) is Decision.RUN


def test_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError):
        evaluate("some_success", [TaskState.SUCCESS])


@pytest.mark.parametrize(("states", "setups", "expected"), SETUP_CASES)
def test_teardown_rule_reads_its_setups(states: list[TaskState], setups: list[TaskState], expected: Decision) -> None:
    assert evaluate(TriggerRule.ALL_DONE_SETUP_SUCCESS, states, setups) is expected


def test_setup_states_change_no_other_rule() -> None:
    assert evaluate(TriggerRule.ALL_DONE, [F, F], [F]) is Decision.RUN


def test_deprecated_rule_name_warns_when_a_task_uses_it() -> None:
    from rabbitrun.authoring.trigger_rules import trigger_rule

    with pytest.warns(DeprecationWarning, match="none_failed_min_one_success"):
        assert trigger_rule("none_failed_or_skipped") is TriggerRule.NONE_FAILED_OR_SKIPPED
    assert trigger_rule("dummy") is TriggerRule.DUMMY
