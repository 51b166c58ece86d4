"""Templated operator fields: ds, params (overridden by --conf), var, conn, ti.xcom_pull, env."""

from rabbitrun import DAG, BashOperator, task

with DAG("templated", params={"who": "default-user"}) as templated:

    @task
    def make():
        return "made-42"

    BashOperator(
        task_id="say",
        bash_command='echo "{{ ds }}|{{ params.who }}|{{ var.value.color }}|{{ conn.tdb.host }}|'
        "{{ ti.xcom_pull(task_ids='make') }}|$RUN\"",
        env={"RUN": "{{ run_id }}"},
    ).set_upstream(make())
