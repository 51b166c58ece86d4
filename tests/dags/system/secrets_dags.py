"""DAGs for the Variables / Connections / XCom / masking tests."""

import datetime
import logging

from rabbitrun import DAG, Connection, Variable, mask_secret, task

with DAG("secrets_dag") as secrets_dag:

    @task
    def leak(**context):
        password = context["conn"].secret_db.password
        print(f"connecting with {password}")
        logging.getLogger("user.code").info("api key is %s", Variable.get("api_key"))
        context["ti"].log.info("via accessor: %s", context["var"]["value"].get("api_key"))
        mask_secret("topsecret-xyz")
        print("registered topsecret-xyz")
        raise ValueError(f"failed with topsecret-xyz and {Connection.get('secret_db').password}")

    @task
    def read_vars(**context):
        first = Variable.get("color")
        second = context["var"]["value"].get("color")
        cfg = context["var"]["json"].get("cfg", {"default": True})
        return {"color": first, "again": second, "cfg": cfg, "missing": Variable.get("nope", default_var="dflt")}

    @task
    def make_types():
        return {"t": (1, 2), "when": datetime.datetime(2026, 1, 2, 3, 4, tzinfo=datetime.UTC), "s": {3}}

    @task
    def check_types(value):
        return [type(value["t"]).__name__, type(value["when"]).__name__, type(value["s"]).__name__]

    @task
    def big():
        return "x" * 5000

    @task
    def p1():
        return 1

    @task
    def p2():
        return 2

    @task
    def pull_many(**context):
        return context["ti"].xcom_pull(task_ids=["p2", "p1", "no_such_task"])

    @task
    def push_by_try(**context):
        ti = context["ti"]
        ti.xcom_push(f"try{ti.try_number}", ti.try_number)
        return ti.try_number

    leak()
    read_vars()
    check_types(make_types())
    big()
    p1()
    p2()
    pull_many()
    push_by_try()


with DAG("xcom_file_dag") as xcom_file_dag:

    @task
    def produce_big():
        return {"blob": "y" * 20000, "when": datetime.datetime(2026, 5, 1, tzinfo=datetime.UTC)}

    @task
    def consume_big(value):
        return {"length": len(value["blob"]), "when_type": type(value["when"]).__name__}

    consume_big(produce_big())


with DAG("masking_gaps_dag") as masking_gaps_dag:

    @task
    def exit_with_secrets():
        """Issue 17 finding 4: a *token* name, a secret inside a JSON Variable, a multi-line key, and
        sys.exit() with a secret in its message."""
        import sys

        token = Variable.get("slack_token")
        cfg = Variable.get("service_cfg", deserialize_json=True)
        key = Variable.get("ssh_private_key")
        print(f"token {token}")
        print(f"db password {cfg['db']['password']}")
        for line in key.splitlines():
            print(f"key line {line}")
        sys.exit(f"giving up with {token} and {cfg['db']['password']}")

    exit_with_secrets()
