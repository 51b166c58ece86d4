"""DAGs the system tests run: XCom, retries, failure propagation, an unbound queue."""

from datetime import timedelta
from pathlib import Path

from rabbitrun import DAG, BashOperator, PythonOperator, task
from rabbitrun.authoring import TriggerRule


def _append(context, name):  # each run of a task appends one line: tests count them
    out = Path(context["params"]["out_dir"]) / f"{name}.lines"
    with out.open("a") as fh:
        fh.write(f"{context['run_id']} try={context['ti'].try_number}\n")


with DAG("xcom_flow", default_args={"retries": 0}) as xcom_flow:

    @task
    def produce(**context):
        context["ti"].xcom_push(key="extra", value={"k": [1, 2, 3]})
        return 21

    @task
    def other():
        return "second"

    def consume(**context):
        ti = context["ti"]
        doubled = ti.xcom_pull(task_ids="produce") * 2
        both = ti.xcom_pull(task_ids=["other", "produce"])
        extra = ti.xcom_pull(task_ids="produce", key="extra")
        return {"doubled": doubled, "both": both, "extra": extra}

    @task
    def echo(value):
        return {"echoed": value}

    p = produce()
    consumer = PythonOperator(task_id="consume", python_callable=consume)
    [p, other()] >> consumer
    consumer >> echo(p)


with DAG("flaky", default_args={"retries": 2, "retry_delay": timedelta(milliseconds=200)}) as flaky:

    @task
    def fail_twice(**context):
        _append(context, "fail_twice")
        if context["ti"].try_number < 3:
            raise RuntimeError(f"planned failure on try {context['ti'].try_number}")
        return context["ti"].try_number

    fail_twice()


with DAG("failing") as failing:

    @task
    def boom(**context):
        _append(context, "boom")
        raise ValueError("boom on purpose")

    @task
    def after_boom(**context):
        _append(context, "after_boom")

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def cleanup(**context):
        _append(context, "cleanup")

    b = boom()
    b >> after_boom()
    b >> cleanup()


with DAG("unbound_queue") as unbound_queue:
    BashOperator(task_id="nowhere", bash_command="echo never", queue="no_such_queue")


with DAG("simple") as simple:

    @task
    def one(**context):
        _append(context, "one")
        return 1

    one()
