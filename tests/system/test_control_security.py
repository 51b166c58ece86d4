"""The attacks of issue 17 (findings 1 and 2) against a real worker over the real broker: a holder of
the broker URL publishes forged, unsigned, expired and replayed control requests, asks for a pool of
60000 and for a log that is a symlink to rabbitrun.toml. Each is refused and the worker keeps running."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import pytest

from rabbitrun import protocol
from rabbitrun.client.control import control
from rabbitrun.keys import TaskInstanceKey, log_relpath
from rabbitrun.names import CONTROL_BROADCAST, Names, control_key
from tests.support.env import Env
from tests.support.services import wait_until


async def publish_raw(env: Env, body: bytes, routing_key: str = CONTROL_BROADCAST) -> None:
    """What anyone holding the broker URL can do: publish straight to the control exchange."""
    connection = await aio_pika.connect(
        env.vars["RABBITRUN__BROKER__URL"], client_properties={"connection_name": "attacker"}
    )
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(Names(env.prefix).control_exchange, ensure=False)
        await exchange.publish(aio_pika.Message(body), routing_key=routing_key)


async def capture_then_replay(env: Env, host: str, command: str, args: dict[str, Any]) -> list[protocol.ControlReply]:
    """Capture the signed bytes of a real request on its way to ``host``, then publish them again."""
    settings = env.settings()
    connection = await aio_pika.connect(env.vars["RABBITRUN__BROKER__URL"])
    async with connection:
        channel = await connection.channel()
        spy = await channel.declare_queue(exclusive=True)
        await spy.bind(Names(env.prefix).control_exchange, routing_key=control_key(host))
        first = await control(settings, command, args, destination=host)
        captured = await spy.get(timeout=5)
        assert captured is not None
        await publish_raw(env, captured.body, control_key(host))
    return first


def refusals(proc: Any) -> str:
    return "\n".join(line for line in proc.log_path.read_text().splitlines() if "refused a control message" in line)


def capacity(env: Env, host: str) -> int:
    replies = asyncio.run(control(env.settings(), "stats", destination=host))
    return int(replies[0].data["concurrency"])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_forged_unsigned_expired_replayed_and_oversized_control_requests_are_refused(env: Env) -> None:
    host = env.vars["RABBITRUN__WORKER__HOSTNAME"]
    worker = env.worker()
    settings = env.settings()
    assert settings.control.secret_key, "db init generates the control key"
    assert (settings.config_file.stat().st_mode & 0o777) == 0o600

    asyncio.run(publish_raw(env, protocol.encode_message(protocol.ControlRequest("shutdown"))))
    wait_until(lambda: "unsigned" in refusals(worker), 15, what="unsigned shutdown refused")
    forged = protocol.sign_control_request(
        protocol.ControlRequest("shutdown"), "not-the-key-" * 3, now=datetime.now(UTC), ttl_s=60
    )
    asyncio.run(publish_raw(env, forged))
    wait_until(lambda: "bad signature" in refusals(worker), 15, what="forged shutdown refused")
    expired = protocol.sign_control_request(
        protocol.ControlRequest("shutdown"),
        str(settings.control.secret_key),
        now=datetime.now(UTC) - timedelta(seconds=120),
        ttl_s=60,
    )
    asyncio.run(publish_raw(env, expired))
    wait_until(lambda: "expired" in refusals(worker), 15, what="expired shutdown refused")
    assert worker.poll() is None and capacity(env, host) == 2

    first = asyncio.run(capture_then_replay(env, host, "pool_grow", {"n": 1}))
    assert [r.data for r in first] == [3]
    wait_until(lambda: "replayed" in refusals(worker), 15, what="replay refused")
    assert capacity(env, host) == 3  # the replay did not grow the pool again

    for n in (60000, -5, 0):
        (reply,) = asyncio.run(control(settings, "pool_grow", {"n": n}, destination=host))
        assert not reply.ok and "max_concurrency" in reply.error, reply
    assert capacity(env, host) == 3

    key = TaskInstanceKey("d", "t", "r1")
    link = settings.home / "logs" / log_relpath(key)
    link.parent.mkdir(parents=True)
    link.symlink_to(settings.config_file)
    (reply,) = asyncio.run(
        control(
            settings, "read_log", {"dag_id": "d", "task_id": "t", "run_id": "r1", "try_number": 1}, destination=host
        )
    )
    assert not reply.ok and "UnsafeLogPath" in reply.error and str(settings.control.secret_key) not in repr(reply)
    assert "Traceback" not in worker.log_path.read_text()  # type: ignore[attr-defined]
    assert worker.poll() is None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_files_of_a_real_run_are_private_to_their_owner(env: Env, db_url: str) -> None:
    """Issue 17, finding 6: another local account reads nothing rabbitrun wrote."""
    from rabbitrun.models.urls import sqlite_file
    from rabbitrun.models.wakeup import sqlite_socket
    from tests.support.runs import run_dag

    env.scheduler()
    env.worker()
    run_id, final = run_dag(env, "simple")
    assert final.state == "success"
    settings = env.settings()
    socket_path = sqlite_socket(db_url)
    assert socket_path is not None and socket_path.exists()
    db_file = sqlite_file(db_url)
    assert db_file is not None
    logs = settings.home / "logs"
    files = [
        settings.config_file,
        socket_path,
        *(p for p in (db_file, db_file + "-wal", db_file + "-shm") if os.path.exists(p)),
    ]
    log_files = [p for p in logs.rglob("*") if p.is_file()]
    assert log_files, "the run wrote task logs"
    for path in [*files, *log_files]:
        mode = os.stat(path).st_mode & 0o777
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
    for folder in [logs, *(p for p in logs.rglob("*") if p.is_dir())]:
        assert folder.stat().st_mode & 0o077 == 0, f"{folder} is {oct(folder.stat().st_mode & 0o777)}"


async def move_envelope(env: Env, from_queue: str, to_queue: str) -> None:
    """What a holder of the broker URL can do: take a real envelope and publish it elsewhere."""
    names = Names(env.prefix)
    connection = await aio_pika.connect(env.vars["RABBITRUN__BROKER__URL"])
    async with connection:
        channel = await connection.channel()
        source = await channel.get_queue(names.task_queue(from_queue), ensure=False)
        captured = await source.get(timeout=5)
        assert captured is not None
        await channel.default_exchange.publish(
            aio_pika.Message(captured.body, reply_to=captured.reply_to, headers=captured.headers),
            routing_key=names.task_queue(to_queue),
        )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_envelope_moved_into_another_queue_is_not_run_there(env: Env) -> None:
    """Issue 17, finding 5: the task of a queue no worker consumes (an isolated queue) is not run
    by a worker of another queue when its envelope is published there."""
    from tests.support.runs import states, trigger

    env.scheduler()
    worker = env.worker()  # consumes "default" only
    run_id = trigger(env, "stuck_queue")  # its task goes to high_priority
    wait_until(
        lambda: (row := states(env, "stuck_queue", run_id).get("never_consumed")) is not None and row.state == "queued",
        30,
        what="queued on high_priority",
    )
    asyncio.run(move_envelope(env, "high_priority", "default"))
    wait_until(lambda: "came from another queue; refused" in worker.log_path.read_text(), 15, what="refused")  # type: ignore[attr-defined]
    assert states(env, "stuck_queue", run_id)["never_consumed"].state == "queued"
