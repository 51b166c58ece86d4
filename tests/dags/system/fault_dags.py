"""DAGs for the fault tests: each task appends one line per run to a file, so tests count effects."""

import os
import signal
import time
from datetime import timedelta
from pathlib import Path

from rabbitrun import DAG, BaseOperator, TaskTimeout, task


def append(context, name):
    out = Path(context["params"]["out_dir"]) / f"{name}.lines"
    with out.open("a") as fh:
        fh.write(f"{context['ti'].task_id} {context['run_id']} try={context['ti'].try_number} pid={os.getpid()}\n")


with DAG("sleepers", default_args={"retries": 2, "retry_delay": timedelta(0)}) as sleepers:
    # ten tasks that each sleep `sleep_s` (conf) and then record their one side effect

    @task
    def nap(i, **context):
        time.sleep(float(context["params"].get("sleep_s", 3)))
        append(context, f"nap{i}")

    for i in range(10):
        nap.override(task_id=f"nap{i}")(i)


with DAG("timeouts") as timeouts:

    @task(execution_timeout=timedelta(seconds=1))
    def soft(**context):
        try:
            time.sleep(30)
        except TaskTimeout:
            append(context, "soft_cleanup")  # the task sees the soft limit and may clean up
            raise

    @task(execution_timeout=timedelta(seconds=1))
    def hard(**context):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # ignores the soft limit: gets SIGKILL
        append(context, "hard_started")
        time.sleep(30)
        append(context, "hard_finished")

    soft()
    hard()


with DAG("timeouts_retry", default_args={"retries": 1, "retry_delay": timedelta(seconds=3)}) as timeouts_retry:
    # try 1 of each overruns its 1 s limit; the retry must wait for retry_delay (3 s)

    @task(execution_timeout=timedelta(seconds=1))
    def soft_retry(**context):
        append(context, "soft_retry")
        time.sleep(30)  # every try overruns: up_for_retry, then failed

    @task(execution_timeout=timedelta(seconds=1))
    def hard_retry(**context):
        append(context, "hard_retry")
        if context["ti"].try_number == 1:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # ignores the soft limit: SIGKILL
            time.sleep(30)

    soft_retry()
    hard_retry()


with DAG("long_running") as long_running:

    @task
    def long_task(**context):
        time.sleep(float(context["params"].get("sleep_s", 15)))
        append(context, "long_task")

    long_task()


class SlowToPrepare(BaseOperator):
    """Takes ``prepare_s`` to be copied for rendering: its task process is RUNNING but has not yet
    installed its SIGTERM handler (that happens when ``execute`` starts), the window in which a
    worker's cold shutdown kills a task process that cannot release its attempt itself."""

    template_fields = ("label",)

    def __init__(self, prepare_s, label="", **kwargs):
        super().__init__(**kwargs)
        self.prepare_s, self.label = prepare_s, label

    def __copy__(self):
        time.sleep(self.prepare_s)
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def execute(self, context):
        append(context, self.task_id)


with DAG("slow_to_prepare") as slow_to_prepare:
    SlowToPrepare(task_id="prepared", prepare_s=8, label="{{ run_id }}")


with DAG("self_kill", default_args={"retries": 1, "retry_delay": timedelta(0)}) as self_kill:

    @task
    def die_once(**context):
        append(context, "die_once")
        if context["ti"].try_number == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # like the OOM killer
        return "survived"

    die_once()


with DAG("stuck_queue") as stuck_queue:

    @task(queue="high_priority")
    def never_consumed(**context):
        append(context, "never_consumed")

    never_consumed()


with DAG("chain3") as chain3:

    @task
    def first(**context):
        time.sleep(float(context["params"].get("sleep_s", 0)))
        append(context, "first")

    @task
    def second(**context):
        time.sleep(float(context["params"].get("sleep_s", 0)))
        append(context, "second")

    @task
    def third(**context):
        append(context, "third")

    first() >> second() >> third()


with DAG("many", default_args={"retries": 3, "retry_delay": timedelta(0)}) as many:

    @task
    def tiny(i, **context):
        time.sleep(float(context["params"].get("sleep_s", 0)))
        append(context, f"tiny{i}")

    for i in range(int(os.environ.get("RABBITRUN_TEST_MANY", "40"))):
        tiny.override(task_id=f"tiny{i}")(i)


with DAG("chatty") as chatty:

    @task
    def talk(**context):
        for i in range(int(context["params"].get("ticks", 8))):
            context["ti"].log.info("tick %s", i)
            time.sleep(0.5)
        append(context, "talk")

    talk()
