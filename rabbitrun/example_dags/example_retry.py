"""example_retry: a task that fails on tries 1 and 2 and succeeds on try 3, to show retries."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rabbitrun.authoring import DAG, task

SUCCEEDS_ON_TRY = 3

with DAG("example_retry", schedule=None, description="retries until try 3", tags=["example"]) as dag:

    @task(retries=2, retry_delay=timedelta(seconds=1))
    def flaky(**context: Any) -> str:
        try_number = context["ti"].try_number
        if try_number < SUCCEEDS_ON_TRY:
            raise RuntimeError(f"failing on purpose on try {try_number}")
        return f"succeeded on try {try_number}"

    flaky()
