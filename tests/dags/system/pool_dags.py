"""DAGs of the concurrency-control system tests: a pool, max_active_tasks, and a wide DAG for
two schedulers."""

import time

from rabbitrun import DAG, task

with DAG("pool_capped") as pool_capped:

    @task(pool="sys_pool")
    def hold(i):
        time.sleep(0.5)
        return i

    for i in range(8):
        hold.override(task_id=f"hold{i}")(i)


with DAG("dag_capped", max_active_tasks=2, max_active_runs=4) as dag_capped:

    @task
    def nap(i):
        time.sleep(0.4)

    for i in range(5):
        nap.override(task_id=f"nap{i}")(i)


with DAG("ha_wide", max_active_runs=50, max_active_tasks=500) as ha_wide:

    @task
    def unit(i):
        return i

    for i in range(10):
        unit.override(task_id=f"unit{i}")(i)
