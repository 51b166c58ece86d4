"""DAGs for the operations tests: log following, events of every outcome, context keys."""

import time
from datetime import timedelta

from rabbitrun import DAG, task

with DAG("burst", default_args={"retries": 1, "retry_delay": timedelta(0)}) as burst:

    @task
    def talk_then_burst(**context):
        """Try 1 fails at once when asked; then identical lines while running, and a burst of
        lines right before the end (the last ones must reach a follower too)."""
        ti, params = context["ti"], context["params"]
        if ti.try_number == 1 and params.get("fail_first"):
            ti.log.info("try one marker")
            raise RuntimeError("planned failure on try 1")
        for _ in range(int(params.get("repeats", 8))):
            ti.log.info("same line")
            time.sleep(float(params.get("every_s", 0.5)))
        for i in range(40):
            ti.log.info("last %s", i)

    talk_then_burst()


with DAG("ops_context") as ops_context:

    @task
    def context_keys(**context):
        return {
            "same_ti": context["ti"] is context["task_instance"],
            "dag_id": context["dag"].dag_id,
            "dag_run": [context["dag_run"].dag_id, context["dag_run"].run_id],
            "run_id": context["run_id"],
            "logical_date": context["logical_date"].isoformat(),
            "ds": context["ds"],
        }

    @task
    def returns_complex():
        return complex(1, 2)  # not JSON: stored only when XCom pickling is enabled

    @task
    def leak_custom(**context):
        import logging
        import sys

        from rabbitrun import Variable

        token = Variable.get("team_token")  # sensitive only through the configured names
        print(f"stdout token {token}")
        print(f"stderr token {token}", file=sys.stderr)
        logging.getLogger("user.code").warning("logged token %s", token)
        print(f"plain {Variable.get('color')}", file=sys.stderr)

    context_keys()
    returns_complex()
    leak_custom()
