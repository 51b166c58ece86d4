"""Branching, short circuits, setup/teardown, depends_on_past and a forged skip: DAGs the branching
tests run (tests/integration/test_branching.py in process, tests/system/test_branching.py with a
real scheduler and worker)."""

import time
from pathlib import Path

from rabbitrun import (
    DAG,
    BaseBranchOperator,
    BashOperator,
    BranchPythonOperator,
    LatestOnlyOperator,
    PythonOperator,
    ShortCircuitOperator,
    TriggerRule,
    setup,
    task,
    teardown,
)

with DAG("branch_join") as branch_join:

    @task.branch
    def choose():
        return "left"

    @task
    def left():
        return "went left"

    @task
    def right():
        return "went right"

    @task
    def after_right():
        return "after right"

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def join():
        return "joined"

    went_left, went_right = left(), right()
    choose() >> [went_left, went_right]
    [went_left, went_right >> after_right()] >> join()


with DAG("branch_classic") as branch_classic:
    pick = BranchPythonOperator(task_id="pick", python_callable=lambda: ["b", "c"])
    for name in ("a", "b", "c"):
        pick >> BashOperator(task_id=name, bash_command=f"echo {name}")


with DAG("branch_invalid") as branch_invalid:
    bad = BranchPythonOperator(task_id="bad", python_callable=lambda: "no_such_task")
    bad >> BashOperator(task_id="next", bash_command="true")


def _short_circuit_dag(dag_id, ignore):
    with DAG(dag_id) as dag:
        check = ShortCircuitOperator(
            task_id="check", python_callable=lambda: False, ignore_downstream_trigger_rules=ignore
        )
        direct = BashOperator(task_id="direct", bash_command="true")
        later = BashOperator(task_id="later", bash_command="true", trigger_rule=TriggerRule.ALL_DONE)
        check >> direct >> later
    return dag


short_circuit_all = _short_circuit_dag("short_circuit_all", True)
short_circuit_direct = _short_circuit_dag("short_circuit_direct", False)


with DAG("short_circuit_decorated") as short_circuit_decorated:

    @task.short_circuit
    def go_on():
        return True

    go_on() >> BashOperator(task_id="ran", bash_command="true")


def _fail():
    raise RuntimeError("the work failed")


with DAG("teardown_after_failure") as teardown_after_failure:

    @setup
    def make_cluster():
        return "cluster"

    @teardown
    def delete_cluster():
        return "deleted"

    with make_cluster() >> delete_cluster():
        PythonOperator(task_id="work", python_callable=_fail)


with DAG("teardown_fails") as teardown_fails:
    create = BashOperator(task_id="create", bash_command="true").as_setup()
    work = BashOperator(task_id="work", bash_command="true")
    remove = BashOperator(task_id="remove", bash_command="exit 3").as_teardown(setups=create)
    create >> work >> remove


def _past(**context):
    if context["params"].get("fail"):
        raise RuntimeError("asked to fail")


with DAG("past_dependent") as past_dependent:
    PythonOperator(task_id="step", python_callable=_past, depends_on_past=True)
    BashOperator(task_id="free", bash_command="true")


class ForgingBranch(BaseBranchOperator):
    """A branch that also names a task that is not downstream of it: the worker must refuse it."""

    def choose_branch(self, context):
        context["ti"].skip_downstream(["bystander"])
        return "after"


def _gate(**context):
    """Holds `bystander` back (still none) until the test releases it, when asked to."""
    if context["params"].get("wait_for_release"):
        flag = Path(context["params"]["out_dir"]) / "release"
        deadline = time.monotonic() + 60
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.1)


with DAG("forged_skip") as forged_skip:
    forger = ForgingBranch(task_id="forger", priority_weight=10)
    forger >> BashOperator(task_id="after", bash_command="true")
    gate = PythonOperator(task_id="gate", python_callable=_gate, priority_weight=1)
    gate >> BashOperator(task_id="bystander", bash_command="true")


with DAG("past_wait_downstream") as past_wait_downstream:
    first_step = BashOperator(task_id="step", bash_command="true", wait_for_downstream=True)
    first_step >> PythonOperator(task_id="after", python_callable=_past)


with DAG("latest_only_manual") as latest_only_manual:
    LatestOnlyOperator(task_id="latest") >> BashOperator(task_id="report", bash_command="true")
