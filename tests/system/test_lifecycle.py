"""The whole lifecycle with real processes: scheduler -> RabbitMQ -> worker -> forked
task -> DB -> reply queue -> scheduler, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aio_pika
import msgpack
import pytest

from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.tables import TaskAttempt, XComRow
from rabbitrun.names import REASON_HEADER, Names
from tests.support.env import Env
from tests.support.runs import lines, run_dag, states
from tests.support.services import amqp_url


@pytest.fixture
def running(env: Env) -> Env:
    env.scheduler()
    env.worker()
    return env


@pytest.mark.parametrize("dag_id", ["example_etl", "example_fanout", "example_bash", "example_retry"])
def test_example_dag_runs_to_success(running: Env, dag_id: str) -> None:
    run_id, final = run_dag(running, dag_id)
    assert final.state == "success", running.logs()
    rows = states(running, dag_id, run_id)
    assert rows and all(r.state == "success" for r in rows.values())
    assert all(r.hostname == running.vars["RABBITRUN__WORKER__HOSTNAME"] for r in rows.values())
    if dag_id == "example_retry":
        assert max(r.try_number for r in rows.values()) == 3


def test_xcom_flows_between_tasks_by_key_and_in_asked_order(running: Env) -> None:
    run_id, final = run_dag(running, "xcom_flow")
    assert final.state == "success", running.logs()
    engine = make_engine(running.settings().database, pooled=False)
    with session_factory(engine)() as session:
        rows = {(r.task_id, r.key): json.loads(r.value) for r in session.query(XComRow).filter_by(run_id=run_id)}
    assert rows[("produce", "return_value")] == 21
    assert rows[("produce", "extra")] == {"k": [1, 2, 3]}
    assert rows[("consume", "return_value")] == {"doubled": 42, "both": ["second", 21], "extra": {"k": [1, 2, 3]}}
    assert rows[("echo", "return_value")] == {"echoed": 21}


def test_task_failing_twice_succeeds_on_try_three(running: Env) -> None:
    run_id, final = run_dag(running, "flaky")
    assert final.state == "success", running.logs()
    row = states(running, "flaky", run_id)["fail_twice"]
    assert (row.state, row.try_number) == ("success", 3)
    assert [line.split()[-1] for line in lines(running, "fail_twice")] == ["try=1", "try=2", "try=3"]
    engine = make_engine(running.settings().database, pooled=False)
    with session_factory(engine)() as session:
        tries = sorted((a.try_number, a.state) for a in session.query(TaskAttempt).filter_by(run_id=run_id))
    assert tries == [(1, "up_for_retry"), (2, "up_for_retry"), (3, "success")]
    log2 = Path(running.settings().logging.base_log_folder) / "flaky" / "fail_twice" / run_id / "2.log"
    assert "planned failure on try 2" in log2.read_text()


def test_failure_without_retries_propagates_and_all_done_still_runs(running: Env) -> None:
    run_id, final = run_dag(running, "failing")
    rows = states(running, "failing", run_id)
    assert rows["boom"].state == "failed" and rows["boom"].try_number == 1
    assert "boom on purpose" in (rows["boom"].reason or "")
    assert rows["after_boom"].state == "upstream_failed"
    assert rows["cleanup"].state == "success"
    assert lines(running, "boom") and not lines(running, "after_boom") and len(lines(running, "cleanup")) == 1
    assert final.state == "failed"  # a leaf (after_boom) is upstream_failed


def test_task_for_unbound_queue_fails_fast_naming_the_queue(running: Env) -> None:
    run_id, final = run_dag(running, "unbound_queue", timeout_s=20)
    row = states(running, "unbound_queue", run_id)["nowhere"]
    assert final.state == "failed"
    assert row.state == "failed"
    assert "no_such_queue" in (row.reason or "")


def test_poison_messages_are_dead_lettered_and_worker_keeps_working(running: Env) -> None:
    names = Names(running.prefix)
    vhost_url = running.vars["RABBITRUN__BROKER__URL"]
    bodies = [b"\x00\xffnot msgpack at all", msgpack.packb({"v": 99, "id": "x"})]

    async def publish_and_collect() -> list[aio_pika.abc.AbstractIncomingMessage]:
        conn = await aio_pika.connect(vhost_url, client_properties={"connection_name": "test poison"})
        async with conn:
            ch = await conn.channel()
            for body in bodies:
                await ch.default_exchange.publish(aio_pika.Message(body), routing_key=names.task_queue("default"))
            dead = await ch.get_queue(names.dead_letter_queue)
            got: list[aio_pika.abc.AbstractIncomingMessage] = []
            for _ in range(200):
                msg = await dead.get(fail=False)
                if msg is not None:
                    got.append(msg)
                    await msg.ack()
                if len(got) == len(bodies):
                    break
                await asyncio.sleep(0.05)
            return got

    dead = asyncio.run(publish_and_collect())
    reasons = sorted(str(m.headers[REASON_HEADER]) for m in dead)
    assert len(dead) == 2, running.logs()
    assert "not valid msgpack" in reasons[0]
    assert "unsupported protocol version: 99" in reasons[1]
    assert sorted(m.body for m in dead) == sorted(bodies)
    _, final = run_dag(running, "simple")
    assert final.state == "success"


def test_broken_dag_file_does_not_stop_the_scheduler(running: Env) -> None:
    listing = running.cli("dags", "list")
    assert listing.returncode == 0
    assert "broken_dag.py:6: ZeroDivisionError" in listing.stderr
    assert "xcom_flow" in listing.stdout
    _, final = run_dag(running, "simple")
    assert final.state == "success"
    assert "broken_dag.py failed to import (line 6)" in running.logs()


def test_trigger_wait_cli_shows_progress_and_exit_code(running: Env) -> None:
    ok = running.cli(
        "dags",
        "trigger",
        "simple",
        "--conf",
        json.dumps({"out_dir": str(running.home.parent / "out")}),
        "--wait",
        "--timeout",
        "60",
    )
    assert ok.returncode == 0, ok.stderr
    assert "1/1 done" in ok.stderr and ": success" in ok.stdout
    bad = running.cli(
        "dags",
        "trigger",
        "failing",
        "--conf",
        json.dumps({"out_dir": str(running.home.parent / "out")}),
        "--wait",
        "--timeout",
        "60",
    )
    assert bad.returncode == 1
    assert ": failed" in bad.stdout
    assert amqp_url  # the URL helper is shared with other suites
