"""DAGs of scripts/bench: one file, the same code for every workload (issue 6).

Sizes come from the environment scripts/bench gives the scheduler and the worker
(RABBITRUN_BENCH_FAN, RABBITRUN_BENCH_SCALE), so `--size tiny` and `--size full` share it.
max_active_runs is raised only so that W6 can hold 100 runs of bench_fan100 in flight with no
worker; it is an ordinary DAG argument, nothing in rabbitrun knows about the benchmark.
"""

import os
import time

from rabbitrun import DAG, Variable, task

FAN = int(os.environ.get("RABBITRUN_BENCH_FAN", "1000"))
SCALE = int(os.environ.get("RABBITRUN_BENCH_SCALE", "10000"))
LIMITS = {"max_active_runs": 100_000, "max_active_tasks": 100_000}


@task
def noop():
    return None


# W1: one no-op task
with DAG("bench_one", **LIMITS) as bench_one:
    noop.override(task_id="only")()

# W2: a chain of 10 no-op tasks
with DAG("bench_chain10", **LIMITS) as bench_chain10:
    previous = None
    for i in range(10):
        current = noop.override(task_id=f"t{i}")()
        if previous is not None:
            previous >> current
        previous = current

# W3 (and a W6 step): FAN independent no-op tasks
with DAG("bench_fan", **LIMITS) as bench_fan:
    for i in range(FAN):
        noop.override(task_id=f"n{i}")()

# W6: SCALE independent no-op tasks in one run
with DAG("bench_scale", **LIMITS) as bench_scale:
    for i in range(SCALE):
        noop.override(task_id=f"s{i}")()

# W6: 100 independent no-op tasks, triggered once and then as many runs
with DAG("bench_fan100", **LIMITS) as bench_fan100:
    for i in range(100):
        noop.override(task_id=f"h{i}")()

# W7: a worker is SIGKILLed while it runs these; they must start again on the other worker
with DAG("bench_lost", **LIMITS) as bench_lost:

    @task
    def sleepy():
        time.sleep(3)

    for i in range(4):
        sleepy.override(task_id=f"l{i}")()

# W4: XCom push -> pull, and a Variable read
with DAG("bench_xcom", **LIMITS) as bench_xcom:

    @task
    def push(**context):
        context["ti"].xcom_push(key="k", value={"rows": 42})
        return 1

    @task
    def pull(value, **context):
        assert value == 1
        assert context["ti"].xcom_pull(task_ids="push", key="k") == {"rows": 42}
        assert Variable.get("bench_var") == "42"

    pull(push())
