"""Topology against the real broker: idempotent declare, plain-words conflicts, definitions
export that the management API imports, prefixes that share a vhost."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
from urllib.parse import quote

import aio_pika
import pytest

from rabbitrun.broker.topology import declare_topology, export_definitions, load_topology
from rabbitrun.errors import TopologyMismatch
from rabbitrun.names import Names
from rabbitrun.settings import BrokerSettings
from tests.conftest import amqp_url, rabbitmqctl

API = "http://127.0.0.1:15672/api"


def api(path: str, body: object | None = None) -> object:
    req = urllib.request.Request(API + path, data=json.dumps(body).encode() if body is not None else None,
                                 method="POST" if body is not None else "GET",
                                 headers={"content-type": "application/json",
                                          "authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            data = resp.read()
    except OSError as exc:
        pytest.fail(f"management API unreachable ({exc}): run scripts/ensure-rabbitmq")
    return json.loads(data) if data else None


def declare(vhost: str, names: Names, scheduler_id: str | None = "s1") -> object:
    async def go() -> object:
        conn = await aio_pika.connect(amqp_url(vhost), client_properties={"connection_name": "test topology"})
        async with conn:
            return await declare_topology(conn, load_topology(None, BrokerSettings()), names,
                                          scheduler_id=scheduler_id)
    return asyncio.run(go())


def test_declare_is_idempotent_and_queues_have_priorities(vhost: str) -> None:
    names = Names("topo1")
    declare(vhost, names)
    declare(vhost, names)
    queue = api(f"/queues/{quote(vhost, safe='')}/{names.task_queue('default')}")
    assert queue["arguments"]["x-max-priority"] == 10  # type: ignore[index]
    assert queue["durable"] is True  # type: ignore[index]
    assert api(f"/queues/{quote(vhost, safe='')}/{names.reply_queue('s1')}")["durable"] is True  # type: ignore[index]


def test_conflicting_queue_is_reported_in_plain_words(vhost: str) -> None:
    names = Names("topo2")

    async def precreate() -> None:
        conn = await aio_pika.connect(amqp_url(vhost))
        async with conn:
            ch = await conn.channel()
            await ch.declare_queue(names.task_queue("default"), durable=True,  # all but the priority
                                   arguments={"x-queue-type": "classic",
                                              "x-dead-letter-exchange": names.dead_letter_exchange})

    asyncio.run(precreate())
    with pytest.raises(TopologyMismatch) as info:
        declare(vhost, names)
    message = str(info.value)
    assert names.task_queue("default") in message and "x-max-priority" in message
    assert "PRECONDITION_FAILED" not in message and "(not set)" in message


def test_exported_definitions_import_into_a_fresh_vhost_and_match_declare(vhost: str) -> None:
    fresh = vhost + "-import"
    rabbitmqctl("add_vhost", fresh)
    rabbitmqctl("set_permissions", "-p", fresh, "guest", ".*", ".*", ".*")
    try:
        names = Names("topo3")
        defs = export_definitions(load_topology(None, BrokerSettings()), names, vhost=fresh, scheduler_ids=["s1"])
        api(f"/definitions/{quote(fresh, safe='')}", {k: v for k, v in defs.items() if k != "vhosts"})
        declare(fresh, names)  # equivalent objects: no conflict
        queues = {q["name"] for q in api(f"/queues/{quote(fresh, safe='')}")}  # type: ignore[union-attr]
        assert {names.task_queue("default"), names.task_queue("high_priority"), names.dead_letter_queue,
                names.reply_queue("s1")} <= queues
    finally:
        rabbitmqctl("delete_vhost", fresh)


def test_two_prefixes_share_a_vhost(vhost: str) -> None:
    declare(vhost, Names("pa"))
    declare(vhost, Names("pb"))
    queues = {q["name"] for q in api(f"/queues/{quote(vhost, safe='')}")}  # type: ignore[union-attr]
    assert {"pa.rabbitrun.q.default", "pb.rabbitrun.q.default"} <= queues
