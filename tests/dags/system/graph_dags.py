"""Graph features of Airflow: @dag (registered by a bare call), TaskGroup, chain, Label, EmptyOperator,
Param, .output in a templated field, and a `with DAG(...)` block without `as` (registered too)."""

from __future__ import annotations

from datetime import datetime, timedelta

from _graph_helper import double  # a module beside the DAG files

from rabbitrun import DAG, BashOperator, EmptyOperator, Label, Param, TaskGroup, chain, dag, task


@dag(
    schedule=None,
    start_date=datetime(2024, 1, 1),
    tags=["graph"],
    params={"label": Param("unused", type="string", minLength=1)},  # the function's default wins, schema kept
)
def graph_features(factor: int = 3, label: str = "x") -> None:
    """graph features end to end"""
    start = EmptyOperator(task_id="start")

    @task
    def scaled(factor: int) -> int:
        return double(factor)

    with TaskGroup("work", tooltip="the work") as work:
        value = scaled(factor)
        echo = BashOperator(task_id="echo", bash_command=f"echo {value}-{{{{ params.label }}}}")
        with TaskGroup("inner"):
            inner = EmptyOperator(task_id="noop")
        value >> echo >> inner

    @task
    def check(echoed: str) -> str:
        return echoed

    end = EmptyOperator(task_id="end")
    chain(start, Label("go"), work, check(echo.output), end)


graph_features()

with DAG("graph_unnamed", schedule=None, start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="only")

with DAG("graph_timeout", schedule=None, start_date=datetime(2024, 1, 1), dagrun_timeout=timedelta(minutes=1)):
    EmptyOperator(task_id="first") >> EmptyOperator(task_id="second")
