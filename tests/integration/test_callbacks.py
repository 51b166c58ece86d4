"""Task callbacks run once per outcome, after it is recorded; a failing callback changes nothing."""

from __future__ import annotations

from rabbitrun import client
from tests.support.env import Env
from tests.support.runs import queue_run, schedule_again, states


def test_callbacks_run_once_each_and_cannot_change_the_outcome(env: Env) -> None:
    run_id = queue_run(env, "callbacks")
    settings = env.settings()
    assert client.run_task(settings, "callbacks", "fine", run_id, try_number=1, hostname="t").state == "success"
    assert client.run_task(settings, "callbacks", "flaky", run_id, try_number=1, hostname="t").state == "up_for_retry"
    schedule_again(env)  # retry_delay 0: queued again as try 2
    assert client.run_task(settings, "callbacks", "flaky", run_id, try_number=2, hostname="t").state == "failed"
    lines = (env.home.parent / "out" / "callbacks.lines").read_text().splitlines()
    assert lines == [
        "success fine try=1 state=success",
        "retry flaky try=1 state=up_for_retry",
        "broken flaky try=2 state=failed",
    ]
    assert states(env, "callbacks", run_id)["flaky"].state == "failed"
    log = client.read_log(settings, "callbacks", "flaky", run_id, try_number=2)[1]
    assert "on_failure_callback of" in log and "a callback that fails" in log
