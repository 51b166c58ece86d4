"""DAGs of the dynamic task mapping tests: over an upstream list, partial + literal list, an empty
list, a value that is not a list, xcom_pull by map index."""

from pathlib import Path

from rabbitrun import DAG, BashOperator, PythonOperator, task
from rabbitrun.authoring import TriggerRule


@task
def numbers(n: int) -> list[int]:
    return list(range(n))


@task
def square(x: int, **context):
    out = Path(context["params"]["out_dir"]) / "square.lines"
    with out.open("a") as fh:  # one line per mapped instance run: tests count them
        fh.write(f"{context['ti'].map_index} {x}\n")
    return x * x


@task
def collect(values):
    return {"values": values, "count": len(values)}


with DAG("map_fifty") as map_fifty:
    collect(square.expand(x=numbers(50)))


with DAG("map_partial_literal") as map_partial_literal:

    @task
    def add(x: int, y: int) -> int:
        return x + y

    collect.override(task_id="sums")(add.partial(y=10).expand(x=[1, 2, 3]))
    BashOperator.partial(task_id="echo", retries=1).expand(bash_command=["echo one", "echo two"])


with DAG("map_empty") as map_empty:
    empty = square.expand(x=numbers(0))
    collect.override(task_id="after_all_success")(empty)
    collect.override(task_id="after_all_done", trigger_rule=TriggerRule.ALL_DONE)(empty)


with DAG("map_not_list") as map_not_list:

    @task
    def scalar() -> int:
        return 5

    collect(square.expand(x=scalar()))


with DAG("map_pull") as map_pull:

    @task
    def maybe(x: int):
        return None if x == 1 else x * 100

    def pull(**context):
        ti = context["ti"]
        return {
            "one": ti.xcom_pull(task_ids="maybe", map_indexes=2),
            "some": ti.xcom_pull(task_ids="maybe", map_indexes=[2, 0]),
            "all": ti.xcom_pull(task_ids="maybe"),
            "missing": ti.xcom_pull(task_ids="maybe", map_indexes=1, default="none pushed"),
        }

    maybe.expand(x=[0, 1, 2]) >> PythonOperator(task_id="pull", python_callable=pull)


with DAG("map_sized") as map_sized:

    @task
    def sized(**context) -> list[int]:  # as many elements as the number in out_dir/n says, so a test can change it
        return list(range(int((Path(context["params"]["out_dir"]) / "n").read_text())))

    collect(square.expand(x=sized()))


with DAG("map_chain") as map_chain:

    @task
    def add_one(x: int) -> int:
        return x + 1

    collect(square.expand(x=add_one.expand(x=[1, 2, 3])))  # maps over the results of a mapped task
