"""Task callbacks: each appends a line naming itself; one raises to prove it cannot change the outcome."""

from datetime import timedelta
from pathlib import Path

from rabbitrun import DAG, task


def note(name):
    def callback(context):
        out = Path(context["params"]["out_dir"]) / "callbacks.lines"
        with out.open("a") as fh:
            fh.write(f"{name} {context['ti'].task_id} try={context['ti'].try_number} state={context['state']}\n")
        if name == "broken":
            raise RuntimeError("a callback that fails")

    return callback


with DAG("callbacks") as callbacks:

    @task(on_success_callback=note("success"), on_failure_callback=note("failure"))
    def fine():
        return 1

    @task(retries=1, retry_delay=timedelta(0), on_retry_callback=note("retry"), on_failure_callback=note("broken"))
    def flaky():
        raise ValueError("always")

    fine()
    flaky()
