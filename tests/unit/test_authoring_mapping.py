"""Dynamic task mapping, authoring side: partial()/expand() build a MappedOperator with the right
dependencies and settings, reject bad arguments at parse time, and unmap() builds the real operator
of one map index."""

from __future__ import annotations

from typing import Any

import pytest

from rabbitrun import DAG, BashOperator, PythonOperator, task
from rabbitrun.authoring import DecoratedPythonOperator, MappedOperator, XComArg
from rabbitrun.authoring.mapped import element_index
from rabbitrun.errors import DagDefinitionError


class FakeTI:
    """Pulls answer from a dict of task_id -> value, as the runner's ti would."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self.values.get(task_ids)


@task
def produce() -> list[int]:
    return [1, 2, 3]


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def total(values: list[int]) -> int:
    return sum(values)


def test_task_partial_expand_over_upstream_output_makes_a_mapped_task_between_its_neighbours() -> None:
    with DAG("d", default_args={"retries": 3}) as dag:
        added = add.partial(y=10).expand(x=produce())
        total(added)
    mapped = dag.get_task("add")
    assert isinstance(added, XComArg) and added.operator is mapped and isinstance(mapped, MappedOperator)
    assert mapped.upstream_task_ids == {"produce"} and mapped.downstream_task_ids == {"total"}
    assert mapped.retries == 3  # default_args reach a mapped task like any other


def test_unmap_builds_the_operator_of_one_map_index_with_the_partial_arguments() -> None:
    with DAG("d"):
        added = add.partial(y=10).expand(x=produce())
    context = {"ti": FakeTI({"produce": [5, 6, 7]})}
    operator = added.operator.unmap(2, context)  # type: ignore[attr-defined]
    assert isinstance(operator, DecoratedPythonOperator) and not isinstance(operator, MappedOperator)
    assert operator.op_kwargs == {"y": 10, "x": 7}
    assert operator.execute(context) == 17
    assert operator.dag is added.operator.dag and operator.upstream_task_ids == {"produce"}


def test_operator_partial_expand_over_a_literal_list() -> None:
    with DAG("d", default_args={"queue": "high_priority"}) as dag:
        echo = BashOperator.partial(task_id="echo", retries=2).expand(bash_command=["echo a", "echo b"])
    assert dag.get_task("echo") is echo and isinstance(echo, MappedOperator)
    assert (echo.retries, echo.queue) == (2, "high_priority")
    commands = [echo.unmap(i, {}) for i in range(2)]
    assert [type(c) for c in commands] == [BashOperator, BashOperator]
    assert [c.bash_command for c in commands] == ["echo a", "echo b"]  # type: ignore[attr-defined]
    assert [c.retries for c in commands] == [2, 2]
    assert dag.task_ids == ["echo"]  # unmapping adds nothing to the DAG


def test_unmap_inside_an_open_dag_adds_nothing_to_it() -> None:
    with DAG("d") as dag:
        echo = BashOperator.partial(task_id="echo").expand(bash_command=["echo a"])
        echo.unmap(0, {})
    assert dag.task_ids == ["echo"]


def test_several_expanded_arguments_map_over_their_product_last_varying_fastest() -> None:
    with DAG("d"):
        out = add.expand(x=[1, 2], y=[10, 20, 30])
    mapped = out.operator
    assert isinstance(mapped, MappedOperator)
    pairs = [mapped.unmap(i, {}).op_kwargs for i in range(6)]  # type: ignore[attr-defined]
    assert pairs == [
        {"x": 1, "y": 10},
        {"x": 1, "y": 20},
        {"x": 1, "y": 30},
        {"x": 2, "y": 10},
        {"x": 2, "y": 20},
        {"x": 2, "y": 30},
    ]


def test_element_index_out_of_range_is_an_error() -> None:
    assert element_index(5, [2, 3]) == [1, 2]
    with pytest.raises(DagDefinitionError, match="out of range"):
        element_index(6, [2, 3])
    with pytest.raises(DagDefinitionError, match="out of range"):
        element_index(-1, [2])


def test_unmap_of_an_upstream_value_that_is_not_a_list_fails_clearly() -> None:
    with DAG("d"):
        out = add.partial(y=1).expand(x=produce())
    with pytest.raises(DagDefinitionError, match="'x' is a int, not a list"):
        out.operator.unmap(0, {"ti": FakeTI({"produce": 5})})  # type: ignore[attr-defined]


def test_partial_outputs_of_upstream_tasks_become_dependencies_and_are_pulled_at_unmap() -> None:
    with DAG("d"):
        base = produce.override(task_id="base")()
        out = add.partial(y=base).expand(x=[1, 2])
    mapped = out.operator
    assert mapped.upstream_task_ids == {"base"}
    operator = mapped.unmap(1, {"ti": FakeTI({"base": 100})})  # type: ignore[attr-defined]
    assert operator.op_kwargs == {"y": 100, "x": 2}


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: add.expand(z=[1]), r"add.expand\(\) got unknown argument\(s\) \['z'\]"),
        (lambda: add.partial(z=1), r"add.partial\(\) got unknown argument\(s\) \['z'\]"),
        (lambda: add.partial(y=1).expand(y=[1]), r"\['y'\] given to both partial\(\) and expand\(\)"),
        (lambda: add.expand(), "needs at least one argument"),
        (lambda: add.expand(x=5), r"expand\(x=...\) needs a list, a tuple or a task's output, got int"),
        (lambda: add.expand(x="abc"), "got str"),
        (lambda: add.expand(x={"a": 1}), "got dict"),
        (lambda: add.expand(x={1, 2}), "got set"),
        (lambda: add.expand(x=[produce()]), "a literal list cannot hold task outputs"),
        (
            lambda: BashOperator.partial(task_id="b").expand(bash_comand=["x"]),
            r"unknown argument\(s\) \['bash_comand'\]",
        ),
        (lambda: BashOperator.partial(task_id="b", colour=1), r"BashOperator.partial\(\) got unknown argument"),
        (lambda: BashOperator.partial(bash_command="x"), "needs a task_id"),
        (
            lambda: BashOperator.partial(task_id="b").expand(env=[{}]),
            r"missing required argument\(s\) \['bash_command'\]",
        ),
        (
            lambda: BashOperator.partial(task_id="b").expand(bash_command=["x"], retries=[1, 2]),
            r"cannot map task settings \['retries'\]",
        ),
    ],
)
def test_bad_partial_or_expand_arguments_fail_at_parse_time(call: Any, message: str) -> None:
    with DAG("d"), pytest.raises(DagDefinitionError, match=message):
        call()


def test_function_taking_kwargs_accepts_any_mapped_name() -> None:
    @task
    def anything(**kwargs: Any) -> Any:
        return kwargs

    with DAG("d"):
        out = anything.expand(whatever=[1, 2])
    assert out.operator.unmap(1, {}).op_kwargs == {"whatever": 2}  # type: ignore[attr-defined]


def test_mapped_task_ids_are_unique_like_other_task_calls() -> None:
    with DAG("d") as dag:
        add.expand(x=[1], y=[2])
        add.expand(x=[1], y=[2])
        PythonOperator.partial(task_id="py", python_callable=print).expand(op_args=[[1], [2]])
    assert dag.task_ids == ["add", "add__1", "py"]
    with pytest.raises(DagDefinitionError, match="already has a task"), DAG("e"):
        BashOperator.partial(task_id="b").expand(bash_command=["x"])
        BashOperator.partial(task_id="b").expand(bash_command=["y"])


def test_a_mapped_task_itself_cannot_execute() -> None:
    with DAG("d"):
        echo = BashOperator.partial(task_id="echo").expand(bash_command=["echo a"])
    with pytest.raises(DagDefinitionError, match="runs as its instances"):
        echo.execute({})
