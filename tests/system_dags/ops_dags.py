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
