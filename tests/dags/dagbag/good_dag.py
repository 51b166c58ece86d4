"""A valid DAG file for DagBag tests: two tasks in sequence."""

from rabbitrun.authoring import DAG, BashOperator, task

with DAG("test_good", schedule=None) as dag:

    @task
    def hello() -> str:
        return "hello"

    hello() >> BashOperator(task_id="bye", bash_command="echo bye")
