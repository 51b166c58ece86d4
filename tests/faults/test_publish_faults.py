"""The publisher side against a real broker: a nack puts the task back with a reason instead of
leaving it QUEUED, and it is published again (same try) once the broker takes it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

import pytest

from rabbitrun.names import Names
from tests.support.env import Env
from tests.support.runs import lines, queue_counts, states, trigger, wait
from tests.support.services import rabbitmqctl, wait_until


@pytest.fixture
def full_default_queue(env: Env, vhost: str) -> Iterator[Callable[[], None]]:
    """This test's `default` queue holds one message and nacks further publishes (a policy scoped to
    this test's prefix in the test vhost); yields the function that lifts it (also run afterwards)."""
    queue = Names(env.prefix).task_queue("default")
    name = f"full-{env.prefix}"
    rabbitmqctl(
        "set_policy",
        "-p",
        vhost,
        "--apply-to",
        "queues",
        name,
        f"^{re.escape(queue)}$",
        json.dumps({"max-length": 1, "overflow": "reject-publish"}),
    )
    lifted: list[bool] = []

    def lift() -> None:
        if not lifted:
            rabbitmqctl("clear_policy", "-p", vhost, name)
            lifted.append(True)

    try:
        yield lift
    finally:
        lift()


def test_broker_nack_puts_the_task_back_with_a_reason_and_it_runs_later(
    env: Env, vhost: str, full_default_queue: Callable[[], None]
) -> None:
    scheduler = env.scheduler()
    run_id = trigger(env, "sleepers", sleep_s=0)
    queue = Names(env.prefix).task_queue("default")

    def nine_put_back() -> list[str]:
        """The states at a moment when nine tasks were put back (between the scheduler's retries)."""
        rows = states(env, "sleepers", run_id).values()
        put = [r for r in rows if r.state == "scheduled" and "nacked" in (r.reason or "")]
        return [r.state for r in rows if r not in put] if len(put) == 9 else []

    others = wait_until(nine_put_back, 30, what="nine nacked tasks put back with a reason")
    assert others == ["queued"]  # only the confirmed one is QUEUED
    assert queue_counts(vhost, queue) == (1, 0)
    assert "publish failed, will retry" in scheduler.log_path.read_text()  # type: ignore[attr-defined]
    cli = env.cli("tasks", "states", "sleepers", run_id)
    assert "nacked" in cli.stdout  # the reason is visible to the user
    full_default_queue()  # the queue takes messages again
    env.worker()
    assert wait(env, "sleepers", run_id, timeout_s=90).state == "success", env.logs()
    assert [len(lines(env, f"nap{i}")) for i in range(10)] == [1] * 10
    assert all(r.try_number == 1 for r in states(env, "sleepers", run_id).values())  # put back, same try
