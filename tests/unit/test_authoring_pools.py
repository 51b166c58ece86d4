"""Task pool arguments: the default pool, pool_slots validation, default_args."""

from __future__ import annotations

import pytest

from rabbitrun.authoring import DAG, BashOperator
from rabbitrun.errors import DagDefinitionError


def test_task_without_a_pool_uses_the_default_pool_with_one_slot() -> None:
    with DAG("d"):
        op = BashOperator(task_id="t", bash_command="true")
    assert (op.pool, op.pool_slots) == ("default_pool", 1)


def test_pool_and_pool_slots_come_from_default_args_too() -> None:
    with DAG("d", default_args={"pool": "etl", "pool_slots": 3}):
        op = BashOperator(task_id="t", bash_command="true")
    assert (op.pool, op.pool_slots) == ("etl", 3)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"pool_slots": 0}, "pool_slots must be >= 1"),
        ({"pool_slots": 1.5}, "pool_slots must be an integer"),
        ({"pool": ""}, "pool must be a non-empty pool name"),
    ],
)
def test_bad_pool_arguments_fail_in_the_dag_file(kwargs: dict[str, object], message: str) -> None:
    with DAG("d"), pytest.raises(DagDefinitionError, match=message):
        BashOperator(task_id="t", bash_command="true", **kwargs)  # type: ignore[arg-type]
