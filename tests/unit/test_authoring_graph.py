"""Airflow's graph authoring: EmptyOperator, TaskGroup, Label, chain helpers, str(XComArg), .output."""

from __future__ import annotations

from typing import Any

import pytest

from rabbitrun.authoring import (
    DAG,
    BashOperator,
    EmptyOperator,
    Label,
    TaskGroup,
    chain,
    chain_linear,
    cross_downstream,
    task,
)
from rabbitrun.authoring.templating import rendered_copy
from rabbitrun.errors import DagDefinitionError


def _edges(dag: DAG) -> set[tuple[str, str]]:
    return {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}


def test_empty_operator_succeeds_doing_nothing() -> None:
    with DAG("d"):
        op = EmptyOperator(task_id="e")
    assert op.execute({}) is None


def test_task_group_prefixes_ids_nests_and_links_by_roots_and_leaves() -> None:
    with DAG("d") as dag:
        start = EmptyOperator(task_id="start")
        with TaskGroup("g", tooltip="t", default_args={"retries": 4}) as g:
            a = EmptyOperator(task_id="a")
            b = EmptyOperator(task_id="b")
            with TaskGroup("h") as h:
                c = EmptyOperator(task_id="c")
            a >> b
        end = EmptyOperator(task_id="end")
        start >> g >> end
    assert (a.task_id, b.task_id, c.task_id, h.group_id) == ("g.a", "g.b", "g.h.c", "g.h")
    assert _edges(dag) == {("start", "g.a"), ("start", "g.h.c"), ("g.a", "g.b"), ("g.b", "end"), ("g.h.c", "end")}
    assert a.retries == 4 and c.retries == 4 and start.retries == 0
    assert set(g.children) == {"g.a", "g.b", "g.h"} and g.tooltip == "t"


def test_task_group_without_prefix_and_lists_on_either_side() -> None:
    with DAG("d") as dag:
        with TaskGroup("g", prefix_group_id=False) as g:
            EmptyOperator(task_id="a")
        x, y = EmptyOperator(task_id="x"), EmptyOperator(task_id="y")
        [x, y] >> g
    assert _edges(dag) == {("x", "a"), ("y", "a")}


def test_decorated_task_in_a_group_gets_a_unique_prefixed_id() -> None:
    @task
    def f() -> int:
        return 1

    with DAG("d") as dag:
        with TaskGroup("g"):
            f()
            f()
    assert dag.task_ids == ["g.f", "g.f__1"]


def test_label_records_edge_info_through_rshift_and_edge_modifier() -> None:
    with DAG("d") as dag:
        a, b, c = (EmptyOperator(task_id=n) for n in "abc")
        a >> Label("to b") >> b
        [a, b] >> Label("to c") >> c
        a.set_downstream(EmptyOperator(task_id="d"), edge_modifier=Label("to d"))
    assert dag.get_edge_info("a", "b") == {"label": "to b"}
    assert dag.get_edge_info("b", "c") == {"label": "to c"} == dag.get_edge_info("a", "c")
    assert dag.get_edge_info("a", "d") == {"label": "to d"}
    assert dag.get_edge_info("c", "a") == {}


def test_chain_links_pairs_lists_and_labels() -> None:
    with DAG("d") as dag:
        a, b, c, d, e, f = (EmptyOperator(task_id=n) for n in "abcdef")
        chain(a, [b, c], [d, e], Label("end"), f)
    assert _edges(dag) == {("a", "b"), ("a", "c"), ("b", "d"), ("c", "e"), ("d", "f"), ("e", "f")}
    assert dag.get_edge_info("e", "f") == {"label": "end"}


def test_chain_refuses_adjacent_lists_of_different_lengths() -> None:
    with DAG("d"):
        a, b, c = (EmptyOperator(task_id=n) for n in "abc")
        with pytest.raises(DagDefinitionError, match="lengths differ"):
            chain([a, b], [c])


def test_chain_linear_and_cross_downstream_link_every_pair() -> None:
    with DAG("d") as dag:
        a, b, c, d, e = (EmptyOperator(task_id=n) for n in "abcde")
        chain_linear(a, [b, c], [d, e])
    assert _edges(dag) == {("a", "b"), ("a", "c"), ("b", "d"), ("b", "e"), ("c", "d"), ("c", "e")}
    with DAG("d2") as dag2:
        x, y, z = (EmptyOperator(task_id=n) for n in "xyz")
        cross_downstream([x, y], [z])
    assert _edges(dag2) == {("x", "z"), ("y", "z")}


def test_str_of_an_xcomarg_is_the_pull_template_and_output_links_and_resolves() -> None:
    with DAG("d") as dag:
        produce = BashOperator(task_id="produce", bash_command="echo 1")
        consume = BashOperator(task_id="consume", bash_command=produce.output)  # type: ignore[arg-type]
    assert str(produce.output) == ("{{ task_instance.xcom_pull(task_ids='produce', dag_id='d', key='return_value') }}")
    assert _edges(dag) == {("produce", "consume")}

    class TI:
        def xcom_pull(self, task_ids: str, key: str, **_: Any) -> str:
            return f"{task_ids}:{key}"

    assert rendered_copy(consume, {"ti": TI()}).bash_command == "produce:return_value"


def test_group_links_to_group_by_leaves_to_roots() -> None:
    with DAG("d") as dag:
        with TaskGroup("g1") as g1:
            EmptyOperator(task_id="a")
        with TaskGroup("g2") as g2:
            EmptyOperator(task_id="b")
        g1 >> g2
    assert _edges(dag) == {("g1.a", "g2.b")}


def test_task_group_decorator_builds_a_group_per_call_and_returns_the_body_result() -> None:
    from rabbitrun.authoring import task_group

    @task
    def produce() -> int:
        return 1

    @task
    def add_one(x: int) -> int:
        return x + 1

    @task_group
    def grp(x: Any) -> Any:
        """Adds one."""
        return add_one(x)

    @task_group(group_id="quiet")
    def quiet() -> None:
        EmptyOperator(task_id="e")

    with DAG("d") as dag:
        first = produce()
        out = grp(first)
        grp(out)
        group = quiet()
    assert dag.task_ids == ["produce", "grp.add_one", "grp__1.add_one", "quiet.e"]
    assert _edges(dag) == {("produce", "grp.add_one"), ("grp.add_one", "grp__1.add_one")}
    assert isinstance(group, TaskGroup) and group.tooltip == ""
    with pytest.raises(DagDefinitionError, match="mapped task groups"):
        grp.expand(x=[1, 2])
