"""Airflow's BaseOperator and DAG arguments: stored under Airflow's names, warned once, refused when removed."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest

from rabbitrun.authoring import DAG, BashOperator, EmptyOperator
from rabbitrun.errors import DagDefinitionError


def test_airflow_operator_arguments_are_stored_explicitly_and_from_default_args() -> None:
    start = datetime(2024, 1, 1)
    args = {"depends_on_past": True, "start_date": start, "do_xcom_push": False, "not_an_arg": 1}
    with DAG("d", default_args=args):
        op = BashOperator(task_id="b", bash_command="true", wait_for_downstream=True, task_display_name="B", doc_md="m")
    assert (op.depends_on_past, op.start_date, op.do_xcom_push) == (True, start, False)
    assert (op.wait_for_downstream, op.task_display_name, op.doc_md) == (True, "B", "m")
    assert not hasattr(op, "not_an_arg")  # unknown default_args keys are ignored, as in Airflow


def test_operator_default_args_override_the_dags() -> None:
    with DAG("d", default_args={"retries": 1}):
        op = EmptyOperator(task_id="e", default_args={"retries": 3})
    assert op.retries == 3


def test_misspelt_operator_argument_names_the_closest() -> None:
    with DAG("d"), pytest.raises(DagDefinitionError, match=r"'depend_on_past' \(did you mean 'depends_on_past'\?\)"):
        EmptyOperator(task_id="e", depend_on_past=True)


def test_sla_is_refused_naming_the_replacement() -> None:
    with DAG("d"), pytest.raises(DagDefinitionError, match="SLAs were removed in Airflow 3"):
        EmptyOperator(task_id="e", sla=timedelta(hours=1))
    with pytest.raises(DagDefinitionError, match="sla_miss_callback"):
        DAG("d2", sla_miss_callback=print)


def test_unimplemented_arguments_warn_once_per_name(caplog: pytest.LogCaptureFixture) -> None:
    class WarnOnceProbeOperator(EmptyOperator):  # its own name: no earlier test warned for it
        pass

    caplog.set_level(logging.WARNING, logger="rabbitrun.authoring")
    with DAG("d"):
        WarnOnceProbeOperator(task_id="a", run_as_user="u1", email="x@y")
        WarnOnceProbeOperator(task_id="b", run_as_user="u2")
        WarnOnceProbeOperator(task_id="c")  # defaults: nothing to warn about
    messages = [r.getMessage() for r in caplog.records if "WarnOnceProbeOperator" in r.getMessage()]
    assert len([m for m in messages if "'run_as_user'" in m]) == 1
    assert len([m for m in messages if "'email'" in m]) == 1
    assert len(messages) == 2


def test_dag_accepts_airflow_arguments_and_stores_them() -> None:
    dag = DAG(
        "d",
        doc_md="# doc",
        dag_display_name="Nice",
        orientation="TB",
        default_view="graph",
        dagrun_timeout=timedelta(minutes=5),
        render_template_as_native_obj=True,
        template_searchpath="/tmp/t",
        user_defined_macros={"m": 1},
        user_defined_filters={"f": str},
        jinja_environment_kwargs={"trim_blocks": True},
        owner_links={"me": "https://x"},
        schedule_interval="@daily",
        concurrency=3,
        auto_register=False,
    )
    assert (dag.doc_md, dag.dag_display_name, dag.orientation, dag.default_view) == ("# doc", "Nice", "TB", "graph")
    assert dag.dagrun_timeout == timedelta(minutes=5) and dag.render_template_as_native_obj
    assert dag.template_searchpath == ["/tmp/t"] and dag.user_defined_macros == {"m": 1}
    assert dag.schedule == "@daily" and dag.max_active_tasks == 3 and dag.auto_register is False
    assert DAG("plain").dag_display_name == "plain"


def test_misspelt_dag_argument_names_the_closest() -> None:
    with pytest.raises(DagDefinitionError, match=r"did you mean 'doc_md'"):
        DAG("d", docmd="x")


def test_subdag_operator_is_refused_naming_task_group() -> None:
    from rabbitrun import SubDagOperator

    with pytest.raises(DagDefinitionError, match="SubDagOperator is not supported.*TaskGroup"):
        SubDagOperator(task_id="s", subdag=None)
