"""Topology against the real broker, each test on a throwaway vhost: idempotent declare,
conflicts in plain words, definitions export that the management API imports and that
declare then accepts as equivalent, prefixes that share a vhost, the management client.

A missing broker or management API fails the test naming scripts/ensure-rabbitmq.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aio_pika
import pytest

from rabbitrun.broker.management import ManagementClient, ManagementUnavailable
from rabbitrun.broker.topology import (
    DeclareReport,
    QueueObj,
    Topology,
    declare_topology,
    export_definitions,
    load_topology,
    object_specs,
)
from rabbitrun.errors import TopologyMismatch
from rabbitrun.names import Names
from rabbitrun.settings import BrokerSettings
from tests.support.services import RABBITMQCTL

AMQP = "amqp://guest:guest@127.0.0.1:5672/"
MANAGEMENT = "http://guest:guest@127.0.0.1:15672/"
FIX = "run scripts/ensure-rabbitmq"
T = TypeVar("T")


def rabbitmqctl(*args: str) -> None:
    try:
        out = subprocess.run([*RABBITMQCTL, "-q", *args], capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        pytest.fail(f"rabbitmqctl not found: {FIX}")
    if out.returncode != 0:
        pytest.fail(f"rabbitmqctl {' '.join(args)} failed ({out.stderr.strip()}): {FIX}")


@pytest.fixture
def new_vhost() -> Iterator[Callable[[], str]]:
    """Make throwaway vhosts for this test; all are deleted afterwards, even on failure."""
    made: list[str] = []

    def make() -> str:
        name = f"rr-test-{uuid.uuid4().hex[:12]}"
        made.append(name)
        rabbitmqctl("add_vhost", name)
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        return name

    yield make
    for name in made:
        subprocess.run([*RABBITMQCTL, "-q", "delete_vhost", name], capture_output=True, timeout=60, check=False)


@pytest.fixture
def vhost(new_vhost: Callable[[], str]) -> str:
    return new_vhost()


@pytest.fixture
def api() -> ManagementClient:
    client = ManagementClient(MANAGEMENT, timeout_s=10)
    try:
        client.overview()
    except ManagementUnavailable as exc:
        pytest.fail(f"{exc}: {FIX}")
    return client


def on_connection(vhost: str, test: str, work: Callable[[aio_pika.abc.AbstractConnection], Awaitable[T]]) -> T:
    """Run ``work`` on a connection named after the test, so the management UI shows who owns it."""

    async def main() -> T:
        try:
            connection = await aio_pika.connect(
                AMQP + quote(vhost, safe=""), client_properties={"connection_name": f"test {test}"}
            )
        except (OSError, aio_pika.exceptions.AMQPConnectionError) as exc:
            pytest.fail(f"RabbitMQ unreachable at {AMQP} ({exc}): {FIX}")
        async with connection:
            return await work(connection)

    return asyncio.run(main())


def declare(vhost: str, topology: Topology, names: Names, scheduler_id: str | None = "s1") -> DeclareReport:
    return on_connection(vhost, "topology", lambda c: declare_topology(c, topology, names, scheduler_id=scheduler_id))


def shipped() -> Topology:
    return load_topology(None, BrokerSettings())


def queue_names(api: ManagementClient, vhost: str) -> set[str]:
    return {q["name"] for q in api.queues(vhost)}


def test_declaring_twice_is_idempotent_and_task_queues_have_priorities(vhost: str, api: ManagementClient) -> None:
    names = Names()
    first = declare(vhost, shipped(), names)
    second = declare(vhost, shipped(), names)
    assert first == second and "rabbitrun.q.default" in first.queues
    for logical in ("default", "high_priority"):
        queue = api.queue(vhost, names.task_queue(logical))
        assert queue is not None and queue["durable"] is True
        assert queue["arguments"]["x-max-priority"] == 10
        assert queue["arguments"]["x-dead-letter-exchange"] == names.dead_letter_exchange
    reply = api.queue(vhost, names.reply_queue("s1"))
    assert reply is not None and reply["durable"] is True and "x-max-priority" not in reply["arguments"]
    exchanges = {e["name"]: e["type"] for e in api.get(f"/exchanges/{quote(vhost, safe='')}")}
    assert {
        names.tasks_exchange: "direct",
        names.control_exchange: "topic",
        names.events_exchange: "topic",
        names.dead_letter_exchange: "fanout",
    }.items() <= exchanges.items()
    bindings = {
        (b["source"], b["destination"], b["routing_key"]) for b in api.get(f"/bindings/{quote(vhost, safe='')}")
    }
    assert (names.tasks_exchange, names.task_queue("default"), "default") in bindings
    assert (names.dead_letter_exchange, names.dead_letter_queue, "") in bindings


def test_existing_queue_without_priority_is_reported_naming_the_queue_and_x_max_priority(vhost: str) -> None:
    names = Names()

    async def precreate(connection: aio_pika.abc.AbstractConnection) -> None:
        channel = await connection.channel()
        # everything the topology wants except the priority, so that is the one difference
        await channel.declare_queue(
            names.task_queue("default"),
            durable=True,
            arguments={"x-queue-type": "classic", "x-dead-letter-exchange": names.dead_letter_exchange},
        )

    on_connection(vhost, "precreate", precreate)
    with pytest.raises(TopologyMismatch) as info:
        declare(vhost, shipped(), names)
    message = str(info.value)
    assert "rabbitrun.q.default" in message and "x-max-priority" in message
    assert "PRECONDITION_FAILED" not in message
    assert (info.value.kind, info.value.existing, info.value.wanted) == ("queue", "(not set)", 10)


def test_exchange_of_another_type_is_reported_and_the_callers_connection_survives(vhost: str) -> None:
    names = Names()

    async def work(connection: aio_pika.abc.AbstractConnection) -> str:
        channel = await connection.channel()
        await channel.declare_exchange(names.tasks_exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        with pytest.raises(TopologyMismatch) as info:
            await declare_topology(connection, shipped(), names)
        assert not channel.is_closed  # the refusal closed declare's own channel, not this one
        await channel.declare_queue("still-usable", auto_delete=True)
        return str(info.value)

    message = on_connection(vhost, "exchange-type", work)
    assert "exchange 'rabbitrun.tasks'" in message and "type='topic'" in message and "'direct'" in message


def test_declare_accepts_a_channel(vhost: str, api: ManagementClient) -> None:
    async def work(connection: aio_pika.abc.AbstractConnection) -> DeclareReport:
        channel = await connection.channel()
        return await declare_topology(channel, shipped(), Names("onchannel"))

    report = on_connection(vhost, "channel", work)
    assert report.queues[-1] == "onchannel.rabbitrun.q.high_priority"
    assert "onchannel.rabbitrun.q.high_priority" in queue_names(api, vhost)


def test_exported_definitions_import_into_a_fresh_vhost_and_declare_finds_them_equivalent(
    new_vhost: Callable[[], str], api: ManagementClient, tmp_path: Path
) -> None:
    fresh = new_vhost()
    path = tmp_path / "topology.toml"
    path.write_text(
        "[queues.default]\n[queues.high_priority]\n[queues.bulk]\nmax_priority = 0\n"
        "message_ttl_ms = 60000\nmax_length = 1000\n"
    )
    topology, names = load_topology(path, BrokerSettings()), Names("exp")
    api.import_definitions(export_definitions(topology, names, vhost=fresh, scheduler_ids=["s1"]), fresh)
    wanted = {o.name: o.arguments for o in object_specs(topology, names, ["s1"]) if isinstance(o, QueueObj)}
    assert {q["name"]: q["arguments"] for q in api.queues(fresh)} == wanted  # the import made them
    report = declare(fresh, topology, names)  # any difference would be a TopologyMismatch
    assert set(report.queues) == set(wanted)


def test_two_prefixes_in_one_vhost_do_not_collide(vhost: str, api: ManagementClient, tmp_path: Path) -> None:
    other = tmp_path / "topology.toml"
    other.write_text("[queues.default]\nmax_priority = 3\n")  # would mismatch if the names collided
    declare(vhost, shipped(), Names("pa"), scheduler_id="s1")
    declare(vhost, load_topology(other, BrokerSettings()), Names("pb"), scheduler_id="s1")
    queues = queue_names(api, vhost)
    assert {
        "pa.rabbitrun.q.default",
        "pa.rabbitrun.replies.s1",
        "pb.rabbitrun.q.default",
        "pb.rabbitrun.replies.s1",
        "pa.rabbitrun.dead",
        "pb.rabbitrun.dead",
    } <= queues
    assert not any(q.startswith("rabbitrun.") for q in queues)
    pa, pb = api.queue(vhost, "pa.rabbitrun.q.default"), api.queue(vhost, "pb.rabbitrun.q.default")
    assert pa is not None and pb is not None
    assert (pa["arguments"]["x-max-priority"], pb["arguments"]["x-max-priority"]) == (10, 3)


def test_management_client_reads_overview_connections_and_consumers(vhost: str, api: ManagementClient) -> None:
    names = Names()
    declare(vhost, shipped(), names)
    assert api.overview()["management_version"].startswith("3.")
    assert api.queue(vhost, "no-such-queue") is None

    async def consume(connection: aio_pika.abc.AbstractConnection) -> tuple[set[str], set[Any]]:
        channel = await connection.channel()
        queue = await channel.get_queue(names.task_queue("default"))

        async def ignore(_message: aio_pika.abc.AbstractIncomingMessage) -> None:
            return None

        await queue.consume(ignore, consumer_tag="test-consumer")

        def seen() -> tuple[set[str], set[Any]]:
            tags = {c["consumer_tag"] for c in api.consumers(vhost)}
            conns = {
                c.get("client_properties", {}).get("connection_name")
                for c in api.connections()
                if c.get("vhost") == vhost
            }
            return tags, conns

        for _ in range(100):  # the management database learns of new connections within a few seconds
            tags, conns = await asyncio.to_thread(seen)
            if "test-consumer" in tags and "test consumer" in conns:
                break
            await asyncio.sleep(0.1)
        return tags, conns

    tags, conns = on_connection(vhost, "consumer", consume)
    assert "test-consumer" in tags and "test consumer" in conns


def test_unreachable_management_api_names_the_url_with_the_password_masked() -> None:
    client = ManagementClient("http://guest:topsecret@127.0.0.1:1/", timeout_s=2)
    with pytest.raises(ManagementUnavailable) as info:
        client.overview()
    assert "127.0.0.1:1" in str(info.value) and "topsecret" not in str(info.value) and "***" in str(info.value)


def test_wrong_management_password_is_unavailable_not_a_crash() -> None:
    with pytest.raises(ManagementUnavailable, match="authentication failed"):
        ManagementClient("http://guest:wrong@127.0.0.1:15672/", timeout_s=5).overview()


def test_quorum_setting_declares_quorum_task_queues_without_priority(vhost: str, api: ManagementClient) -> None:
    declare(vhost, load_topology(None, BrokerSettings(queue_type="quorum")), Names("qq"))
    queue = api.queue(vhost, "qq.rabbitrun.q.default")
    assert queue is not None and queue["type"] == "quorum" and "x-max-priority" not in queue["arguments"]
    reply = api.queue(vhost, "qq.rabbitrun.replies.s1")
    assert reply is not None and reply["type"] == "classic"
