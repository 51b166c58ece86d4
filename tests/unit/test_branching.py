"""Branching and skipping as pure decisions: what a branch, a short circuit, the date/time and weekday
branches and LatestOnly skip, which tasks a skipping operator may skip, setup/teardown wiring and the
effective leaves that decide a run's state, WeekDay, and the refusal of a skip list."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from rabbitrun import (
    DAG,
    BashOperator,
    BranchDateTimeOperator,
    BranchDayOfWeekOperator,
    BranchPythonOperator,
    LatestOnlyOperator,
    ShortCircuitOperator,
    TriggerRule,
    WeekDay,
    setup,
    task,
    teardown,
)
from rabbitrun.authoring import effective_leaves, may_skip
from rabbitrun.errors import DagDefinitionError
from rabbitrun.models.outcomes import refused_skips


class _Ti:
    """What a skipping operator sees as context["ti"]: it records the skips."""

    def __init__(self) -> None:
        self.skipped: list[str] = []

    def skip_downstream(self, task_ids: Iterable[str]) -> None:
        self.skipped.extend(task_ids)


def _bash(task_id: str, **kwargs: Any) -> BashOperator:
    return BashOperator(task_id=task_id, bash_command="true", **kwargs)


def _run(operator: Any, **context: Any) -> tuple[Any, list[str]]:
    ti = _Ti()
    result = operator.execute({"ti": ti, "task": operator, "params": {}, **context})
    return result, sorted(ti.skipped)


def test_branch_skips_direct_downstream_not_chosen_but_not_a_join_below_the_chosen_one() -> None:
    with DAG("d"):
        pick = BranchPythonOperator(task_id="pick", python_callable=lambda: "a")
        a, b, join = _bash("a"), _bash("b"), _bash("join", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
        pick >> [a, b, join]
        a >> join
    assert _run(pick) == ("a", ["b"])


@pytest.mark.parametrize(
    ("answer", "skipped"),
    [
        ("a", ["grp.b", "grp.c"]),
        (["a", "grp.b"], ["grp.c"]),
        (None, ["a", "grp.b", "grp.c"]),
        ([], ["a", "grp.b", "grp.c"]),
        ("grp", ["a"]),  # a task group id follows the group's tasks below the branch
    ],
)
def test_branch_answer_decides_what_is_skipped(answer: Any, skipped: list[str]) -> None:
    with DAG("d"):
        pick = BranchPythonOperator(task_id="pick", python_callable=lambda: answer)
        pick >> [_bash("a"), _bash("grp.b"), _bash("grp.c")]
    assert _run(pick)[1] == skipped


@pytest.mark.parametrize("answer", ["nope", ["a", "nope"], [1]])
def test_branch_naming_no_task_fails_with_a_clear_message(answer: Any) -> None:
    with DAG("d"):
        pick = BranchPythonOperator(task_id="pick", python_callable=lambda: answer)
        pick >> _bash("a")
    with pytest.raises(DagDefinitionError, match="branch task 'pick'"):
        _run(pick)


def test_task_branch_decorator_makes_a_branch() -> None:
    with DAG("d") as dag:

        @task.branch
        def pick() -> str:
            return "b"

        pick() >> [_bash("a"), _bash("b")]
    assert _run(dag.get_task("pick")) == ("b", ["a"])
    assert may_skip(dag.get_task("pick")) == ("a", "b")


@pytest.mark.parametrize(("ignore", "skipped"), [(True, ["direct", "later"]), (False, ["direct"])])
def test_false_short_circuit_skips_all_or_only_direct_downstream_but_never_a_teardown(
    ignore: bool, skipped: list[str]
) -> None:
    with DAG("d"):
        check = ShortCircuitOperator(task_id="check", python_callable=lambda: 0, ignore_downstream_trigger_rules=ignore)
        direct, later = _bash("direct"), _bash("later")
        cleanup = _bash("cleanup").as_teardown()
        check >> direct >> later
        check >> cleanup
    assert _run(check) == (0, skipped)


def test_true_short_circuit_skips_nothing() -> None:
    with DAG("d") as dag:

        @task.short_circuit(ignore_downstream_trigger_rules=False)
        def check() -> bool:
            return True

        check() >> _bash("a")
    assert _run(dag.get_task("check")) == (True, [])


def test_only_skipping_operators_may_skip_and_only_their_downstream() -> None:
    with DAG("d"):
        pick = BranchPythonOperator(task_id="pick", python_callable=lambda: "a")
        a, b, side = _bash("a"), _bash("b"), _bash("side")
        pick >> a >> b
    assert may_skip(pick) == ("a", "b")
    assert may_skip(a) == ()
    assert may_skip(side) == ()


@pytest.mark.parametrize(
    ("skip", "may", "refused"),
    [((), (), None), (("a",), ("a", "b"), None), (("x",), ("a",), "['x']"), (("a", "x", "y"), ("a",), "['x', 'y']")],
)
def test_skip_list_naming_a_task_it_may_not_skip_is_refused(
    skip: tuple[str, ...], may: tuple[str, ...], refused: str | None
) -> None:
    answer = refused_skips("pick", skip, may)
    assert answer is None if refused is None else (answer is not None and f"refused to skip {refused}" in answer)


AT = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("lower", "upper", "branch"),
    [
        (time(11), time(13), "inside"),
        (time(13), time(14), "outside"),
        (time(22), time(13), "outside"),  # upper before lower: 22:00 today to 13:00 tomorrow
        (time(10), time(1), "inside"),  # 10:00 today to 01:00 tomorrow
        (None, time(11), "outside"),
        (time(11), None, "inside"),
        (AT - timedelta(hours=1), AT + timedelta(hours=1), "inside"),
        (AT + timedelta(hours=1), None, "outside"),
    ],
)
def test_date_time_branch_compares_the_logical_date_with_its_window(lower: Any, upper: Any, branch: str) -> None:
    with DAG("d", start_date=datetime(2026, 1, 1, tzinfo=UTC)):
        op = BranchDateTimeOperator(
            task_id="when",
            follow_task_ids_if_true="inside",
            follow_task_ids_if_false="outside",
            target_lower=lower,
            target_upper=upper,
            use_task_logical_date=True,
        )
        op >> [_bash("inside"), _bash("outside")]
    chosen, skipped = _run(op, logical_date=AT)
    assert chosen == branch and skipped == sorted({"inside", "outside"} - {branch})


def test_date_time_branch_needs_a_bound() -> None:
    with DAG("d"), pytest.raises(DagDefinitionError, match="At least one must be defined"):
        BranchDateTimeOperator(task_id="when", follow_task_ids_if_true="a", follow_task_ids_if_false="b")


@pytest.mark.parametrize(
    ("week_day", "branch"),
    [("Wednesday", "yes"), ("monday", "no"), (WeekDay.WEDNESDAY, "yes"), ({"Saturday", "Sunday"}, "no")],
)
def test_day_of_week_branch_follows_the_logical_date(week_day: Any, branch: str) -> None:
    with DAG("d"):
        op = BranchDayOfWeekOperator(
            task_id="day",
            follow_task_ids_if_true="yes",
            follow_task_ids_if_false="no",
            week_day=week_day,
            use_task_logical_date=True,
        )
        op >> [_bash("yes"), _bash("no")]
    assert _run(op, logical_date=AT)[0] == branch


def test_weekday_names_numbers_and_errors_are_airflows() -> None:
    assert WeekDay.get_weekday_number("sunday") == 7 == WeekDay.SUNDAY
    assert WeekDay.validate_week_day(["Monday", WeekDay.FRIDAY]) == {1, 5}
    with pytest.raises(AttributeError, match='Invalid Week Day passed: "Funday"'):
        WeekDay.get_weekday_number("Funday")
    with pytest.raises(TypeError):
        WeekDay.validate_week_day(3)  # type: ignore[arg-type]
    with DAG("d"), pytest.raises(DagDefinitionError, match="Funday"):
        BranchDayOfWeekOperator(
            task_id="x", follow_task_ids_if_true="a", follow_task_ids_if_false="b", week_day="Funday"
        )


def _latest_only_run(run_type: str, interval_end: datetime) -> list[str]:
    with DAG("d", schedule="@daily", start_date=datetime(2026, 1, 1, tzinfo=UTC)) as dag:
        latest = LatestOnlyOperator(task_id="latest")
        latest >> _bash("a")
    run = SimpleNamespace(run_type=run_type, data_interval_end=interval_end)
    return _run(latest, dag=dag, dag_run=run)[1]


def test_latest_only_skips_downstream_of_an_older_scheduled_run_only() -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert _latest_only_run("scheduled", today) == []  # the latest complete interval ended today at 00:00
    assert _latest_only_run("scheduled", today - timedelta(days=3)) == ["a"]
    assert _latest_only_run("manual", today - timedelta(days=3)) == []


def test_setup_teardown_scope_puts_the_work_between_them_and_teardown_waits_for_all_done() -> None:
    with DAG("d") as dag:

        @setup
        def create() -> str:
            return "x"

        @teardown
        def delete() -> None:
            return None

        with create() >> delete():
            _bash("first") >> _bash("second")
    assert dag.get_task("first").upstream_task_ids == {"create"}
    assert dag.get_task("delete").upstream_task_ids == {"create", "second"}
    assert dag.get_task("delete").trigger_rule == TriggerRule.ALL_DONE_SETUP_SUCCESS
    assert effective_leaves(dag.tasks) == {"second"}  # the teardown does not decide the run's state


def test_as_teardown_marks_its_setups_and_a_teardown_that_fails_the_run_counts() -> None:
    with DAG("d") as dag:
        create, work = _bash("create"), _bash("work")
        delete = _bash("delete").as_teardown(setups=create, on_failure_fail_dagrun=True)
        create >> work >> delete
    assert create.is_setup and delete.is_teardown and delete.upstream_task_ids == {"create", "work"}
    assert effective_leaves(dag.tasks) == {"delete"}


def test_only_a_setup_or_teardown_opens_a_scope() -> None:
    with DAG("d"):
        plain = _bash("plain")
        with pytest.raises(DagDefinitionError, match="neither a setup nor a teardown"), plain:
            pass


def test_depends_on_past_and_wait_for_downstream_are_accepted_also_from_default_args() -> None:
    with DAG("d", default_args={"depends_on_past": True}):
        a = _bash("a")
        b = _bash("b", wait_for_downstream=True, depends_on_past=False)
    assert a.depends_on_past and not a.wait_for_downstream
    assert b.depends_on_past and b.wait_for_downstream  # wait_for_downstream implies depends_on_past
