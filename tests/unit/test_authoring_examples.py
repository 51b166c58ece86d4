"""The bundled example DAGs have the promised shape and run end to end with a fake ti."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from rabbitrun.authoring import DAG, DagBag


class FakeTI:
    def __init__(self, store: dict[tuple[str, str], Any], try_number: int = 1) -> None:
        self.store = store
        self.try_number = try_number
        self.log = logging.getLogger("rabbitrun.task")

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self.store.get((task_ids, key))

    def xcom_push(self, key: str, value: Any) -> None:
        raise AssertionError("examples do not push extra XComs")


def _run(dag: DAG) -> dict[tuple[str, str], Any]:
    """Run every task once in topological order, as a minimal stand-in for the runner."""
    store: dict[tuple[str, str], Any] = {}
    for op in dag.topological_sort():
        result = op.execute({"ti": FakeTI(store), "dag": dag, "run_id": "test", "params": op.params})
        if result is not None:
            store[(op.task_id, "return_value")] = result
    return store


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> DagBag:
    return DagBag(tmp_path_factory.mktemp("empty_dags"))


def test_examples_load_without_errors(bag: DagBag) -> None:
    assert bag.import_errors == {}
    assert {"example_etl", "example_fanout", "example_bash", "example_retry"} <= set(bag.dags)
    assert bag.file_ref("example_etl") == "@examples/example_etl.py"


def test_example_etl_passes_values_down_and_notifies(bag: DagBag, caplog: pytest.LogCaptureFixture) -> None:
    dag = bag.get_dag("example_etl")
    assert [t.task_id for t in dag.topological_sort()] == ["extract", "transform", "load", "notify"]
    with caplog.at_level(logging.INFO, logger="rabbitrun.task"):
        store = _run(dag)
    assert store[("transform", "return_value")] == {"count": 8, "total": 31}
    assert store[("notify", "return_value")] == "done"
    assert "loading 8 rows (total 31)" in caplog.messages


def test_example_fanout_joins_twenty_parallel_results(bag: DagBag) -> None:
    dag = bag.get_dag("example_fanout")
    join = dag.get_task("join")
    assert len(join.upstream_task_ids) == 20
    assert all(dag.get_task(t).upstream_task_ids == {"start"} for t in join.upstream_task_ids)
    assert _run(dag)[("join", "return_value")] == sum(n * n for n in range(20))


def test_example_bash_runs_two_commands_in_sequence(bag: DagBag) -> None:
    dag = bag.get_dag("example_bash")
    assert dag.get_task("greet").upstream_task_ids == {"hello"}
    assert _run(dag)[("greet", "return_value")] == "greetings, rabbitrun"


def test_example_retry_fails_twice_then_succeeds(bag: DagBag) -> None:
    op = bag.get_dag("example_retry").get_task("flaky")
    assert op.retries == 2 and op.retry_delay.total_seconds() == 1
    for try_number in (1, 2):
        with pytest.raises(RuntimeError, match=f"try {try_number}"):
            op.execute({"ti": FakeTI({}, try_number)})
    assert op.execute({"ti": FakeTI({}, 3)}) == "succeeded on try 3"


def test_examples_are_left_out_when_not_included(tmp_path: Path) -> None:
    assert DagBag(tmp_path, include_examples=False).dags == {}
