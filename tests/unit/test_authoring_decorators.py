"""@task: operators from calls, XComArg dependencies and resolution, task id suffixes, context kwargs."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from rabbitrun.authoring import DAG, DecoratedPythonOperator, PythonOperator, XComArg, task


class FakeTI:
    """What the runner will provide as ``ti``: an XCom store, try_number and a log."""

    def __init__(self, xcoms: dict[tuple[str, str], Any] | None = None, try_number: int = 1) -> None:
        self.xcoms = dict(xcoms or {})
        self.try_number = try_number
        self.log = logging.getLogger("rabbitrun.task")
        self.pulls: list[tuple[str, str]] = []

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        self.pulls.append((task_ids, key))
        return self.xcoms.get((task_ids, key))

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[("self", key)] = value


def test_calling_a_task_creates_an_operator_and_returns_its_xcomarg() -> None:
    @task
    def extract() -> int:
        return 1

    with DAG("d") as dag:
        out = extract()
    assert isinstance(out, XComArg) and out.key == "return_value"
    assert isinstance(out.operator, DecoratedPythonOperator) and isinstance(out.operator, PythonOperator)
    assert dag.get_task("extract") is out.operator


def test_repeated_calls_get_suffixed_task_ids() -> None:
    @task
    def fn() -> None:
        return None

    with DAG("d") as dag:
        fn(), fn(), fn()
    assert dag.task_ids == ["fn", "fn__1", "fn__2"]


def test_decorator_kwargs_reach_the_operator() -> None:
    @task(task_id="custom", queue="high_priority", retries=2, retry_delay=timedelta(seconds=1), priority_weight=5)
    def fn() -> None:
        return None

    with DAG("d"):
        op = fn().operator
    assert (op.task_id, op.queue, op.retries, op.retry_delay, op.priority_weight) == (
        "custom",
        "high_priority",
        2,
        timedelta(seconds=1),
        5,
    )


def test_dag_default_args_apply_to_decorated_tasks_unless_given() -> None:
    @task
    def a() -> None:
        return None

    @task(retries=0)
    def b() -> None:
        return None

    with DAG("d", default_args={"retries": 3, "queue": "q"}):
        op_a, op_b = a().operator, b().operator
    assert (op_a.retries, op_a.queue) == (3, "q")
    assert (op_b.retries, op_b.queue) == (0, "q")


def test_xcomarg_arguments_make_producers_upstream_even_nested_one_level() -> None:
    @task
    def make() -> int:
        return 1

    @task
    def use(x: int, many: list[int], named: dict[str, int]) -> None:
        return None

    with DAG("d"):
        first, second, third = make(), make(), make()
        consumer = use(first, [second], named={"k": third}).operator
    assert consumer.upstream_task_ids == {"make", "make__1", "make__2"}


def test_xcomarg_values_are_pulled_at_execute_time() -> None:
    @task
    def make() -> int:
        return 0

    @task
    def add(x: int, ys: list[int], named: dict[str, int], plain: int) -> int:
        return x + sum(ys) + named["k"] + plain

    with DAG("d"):
        a, b = make(), make()
        op = add(a, [b, 10], named={"k": a}, plain=100).operator
    ti = FakeTI({("make", "return_value"): 1, ("make__1", "return_value"): 2})
    assert op.execute({"ti": ti}) == 1 + 2 + 10 + 1 + 100


def test_xcomarg_shift_delegates_to_its_operator() -> None:
    @task
    def a() -> None:
        return None

    @task
    def b() -> None:
        return None

    with DAG("d"):
        xa, xb = a(), b()
        assert (xa >> xb) is xb
        xc = a()
        assert ([xc] >> xa) is xa
    assert xb.operator.upstream_task_ids == {"a"}
    assert xa.operator.upstream_task_ids == {"a__1"}


def test_decorated_function_gets_context_by_name_and_by_var_keyword() -> None:
    @task
    def named(ti: Any, ds: str) -> str:
        return f"{ti.try_number}:{ds}"

    @task
    def everything(**context: Any) -> list[str]:
        return sorted(context)

    with DAG("d"):
        op_named, op_all = named().operator, everything().operator
    ctx = {"ti": FakeTI(try_number=2), "ds": "2026-01-01", "run_id": "r"}
    assert op_named.execute(ctx) == "2:2026-01-01"
    assert op_all.execute(ctx) == ["ds", "run_id", "ti"]


def test_multiple_outputs_pushes_each_key_and_getitem_refers_to_it() -> None:
    @task(multiple_outputs=True)
    def split() -> dict[str, int]:
        return {"a": 1, "b": 2}

    with DAG("d"):
        out = split()
    ti = FakeTI()
    assert out.operator.execute({"ti": ti}) == {"a": 1, "b": 2}
    assert ti.xcoms == {("self", "a"): 1, ("self", "b"): 2}
    assert out["a"].key == "a" and out["a"].operator is out.operator


def test_multiple_outputs_with_a_non_dict_result_fails() -> None:
    @task(multiple_outputs=True)
    def bad() -> int:
        return 1

    with DAG("d"):
        op = bad().operator
    with pytest.raises(TypeError, match="multiple_outputs"):
        op.execute({"ti": FakeTI()})


def test_override_changes_task_arguments_for_one_call() -> None:
    @task
    def fn() -> None:
        return None

    with DAG("d") as dag:
        fn.override(task_id="other", retries=4)()
    assert dag.get_task("other").retries == 4


def test_decorated_function_keeps_its_name_and_doc() -> None:
    @task
    def documented() -> None:
        """Docs."""

    assert documented.__name__ == "documented" and documented.__doc__ == "Docs."
