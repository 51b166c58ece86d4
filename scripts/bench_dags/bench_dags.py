"""DAGs of scripts/bench: the same code for every workload; sizes come from the environment."""

import os

from rabbitrun import DAG, Variable, task

FAN = int(os.environ.get("RABBITRUN_BENCH_FAN", "1000"))
SCALE = int(os.environ.get("RABBITRUN_BENCH_SCALE", "10000"))


@task
def noop():
    return None


with DAG("bench_one") as bench_one:
    noop.override(task_id="only")()

with DAG("bench_chain10") as bench_chain10:
    previous = None
    for i in range(10):
        current = noop.override(task_id=f"t{i}")()
        if previous is not None:
            previous >> current
        previous = current

with DAG("bench_fan") as bench_fan:
    for i in range(FAN):
        noop.override(task_id=f"n{i}")()

with DAG("bench_scale") as bench_scale:
    for i in range(SCALE):
        noop.override(task_id=f"s{i}")()

with DAG("bench_fan100") as bench_fan100:
    for i in range(100):
        noop.override(task_id=f"h{i}")()

with DAG("bench_xcom") as bench_xcom:

    @task
    def push(**context):
        context["ti"].xcom_push(key="k", value={"rows": 42})
        return 1

    @task
    def pull(value, **context):
        assert context["ti"].xcom_pull(task_ids="push", key="k") == {"rows": 42}
        return Variable.get("bench_var", default_var="x")

    pull(push())
