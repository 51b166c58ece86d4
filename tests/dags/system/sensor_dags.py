"""Sensors and DAG callbacks the system tests run: reschedule frees the slot, timeouts, another DAG's task."""

import time
from datetime import datetime, timedelta
from pathlib import Path

from rabbitrun import DAG, BashOperator, ExternalTaskSensor, FileSensor, task


def _note(line):
    def callback(context):
        out = Path(context["params"]["out_dir"]) / "dag_callbacks.lines"
        with out.open("a") as fh:
            fh.write(f"{line} {context['dag'].dag_id} {context['run_id']} {context['state']} {context['reason']}\n")
        if "raise" in line:
            raise RuntimeError("a DAG callback that fails")

    return callback


with DAG("sensor_frees_slot") as sensor_frees_slot:
    # published first (higher priority): it pokes, frees the only slot, and `other` runs meanwhile
    FileSensor(
        task_id="wait_for_flag",
        filepath="{{ params.out_dir }}/flag*",
        mode="reschedule",
        poke_interval=0.5,
        timeout=60,
        priority_weight=10,
    )

    @task(priority_weight=1)
    def other():
        time.sleep(2)

    other()


with DAG("sensor_timeouts", default_args={"retries": 2, "retry_delay": 0}) as sensor_timeouts:
    hard = FileSensor(
        task_id="hard", filepath="{{ params.out_dir }}/never", mode="reschedule", poke_interval=0.3, timeout=3
    )
    soft = FileSensor(
        task_id="soft",
        filepath="{{ params.out_dir }}/never",
        mode="reschedule",
        poke_interval=0.3,
        timeout=2,
        soft_fail=True,
    )
    poking = FileSensor(task_id="poking", filepath="{{ params.out_dir }}/never", poke_interval=0.2, timeout=1)
    soft >> BashOperator(task_id="after_soft", bash_command="true")


with DAG("ext_upstream") as ext_upstream:
    gate = FileSensor(task_id="gate", filepath="{{ params.out_dir }}/upstream_go", poke_interval=0.2, timeout=60)
    gate >> BashOperator(task_id="produce", bash_command="true")


with DAG("ext_waiter") as ext_waiter:
    ExternalTaskSensor(
        task_id="wait_produce",
        external_dag_id="ext_upstream",
        external_task_id="produce",
        execution_date_fn=lambda logical_date, params: datetime.fromisoformat(params["upstream_date"]),
        mode="reschedule",
        poke_interval=0.3,
        timeout=60,
    )


with DAG(
    "dag_callbacks_ok", on_success_callback=_note("success"), on_failure_callback=_note("failure")
) as dag_callbacks_ok:
    BashOperator(task_id="fine", bash_command="true")


with DAG(
    "dag_callbacks_fail",
    on_success_callback=_note("success"),
    on_failure_callback=_note("raise-failure"),
    default_args={"retry_delay": timedelta(0)},
) as dag_callbacks_fail:
    BashOperator(task_id="boom", bash_command="exit 3")
