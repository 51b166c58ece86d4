"""A worker whose metadata DB is down when a task arrives: the attempt is not started, the reason is
written where users look (the per-try log and the worker log) and the delivery is kept (requeued)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aio_pika
import pytest

from rabbitrun import protocol
from rabbitrun.keys import TaskInstanceKey, log_relpath
from rabbitrun.names import Names
from tests.support.env import Env
from tests.support.services import wait_until


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_database_down_at_task_start_writes_the_reason_to_the_task_log_and_keeps_the_delivery(env: Env) -> None:
    env.scheduler()
    env.vars["RABBITRUN__DATABASE__URL"] = "postgresql+psycopg://postgres:dbpw@127.0.0.1:1/nowhere"
    env.vars["RABBITRUN__DATABASE__CONNECT_TIMEOUT_S"] = "1"
    worker = env.worker()
    key = TaskInstanceKey("chain3", "first", "r-db-down", -1, 1)
    envelope = protocol.TaskEnvelope(id="db-down-1", key=key, dag_file="fault_dags.py", queue="default")
    queue = Names(env.prefix).task_queue("default")

    async def publish() -> None:
        conn = await aio_pika.connect(env.vars["RABBITRUN__BROKER__URL"])
        async with conn:
            channel = await conn.channel()
            await channel.default_exchange.publish(aio_pika.Message(protocol.encode_envelope(envelope)), queue)

    asyncio.run(publish())
    task_log = Path(env.settings().logging.base_log_folder) / log_relpath(key)
    wait_until(
        lambda: task_log.is_file() and "goes back to the queue" in task_log.read_text(),
        30,
        what="the reason in the per-try log",
    )
    text = task_log.read_text()
    assert "metadata database unavailable at task start" in text and "dbpw" not in text
    worker_log = worker.log_path  # type: ignore[attr-defined]
    wait_until(
        lambda: worker_log.read_text().count("requeueing the delivery") >= 2,
        30,
        what="the delivery requeued and retried",
    )
    assert task_log.read_text().count("goes back to the queue") == 1  # not once per redelivery
    assert worker.poll() is None and "Traceback" not in worker_log.read_text()
