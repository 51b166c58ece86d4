"""How a running system is doing: broker and topology checks, queues (the management API, or a
reduced view over AMQP), live workers, task instance counts in the DB."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aio_pika

from rabbitrun.broker.connection import connect
from rabbitrun.client.control import workers_online
from rabbitrun.names import Names
from rabbitrun.settings import Settings


async def broker_check(settings: Settings) -> list[str]:
    """Problems with the broker and the declared topology (empty when healthy)."""
    from rabbitrun.broker.topology import ExchangeObj, QueueObj, load_topology, object_specs

    names = Names(settings.broker.prefix)
    topology = load_topology(
        Path(settings.broker.topology_file) if settings.broker.topology_file else None, settings.broker
    )
    problems = []
    connection = await connect(settings.broker, "cli", "check")
    try:
        for obj in object_specs(topology, names):
            if not isinstance(obj, ExchangeObj | QueueObj):
                continue
            channel = await connection.channel()
            try:
                if isinstance(obj, ExchangeObj):
                    await channel.get_exchange(obj.name, ensure=True)
                else:
                    await channel.declare_queue(obj.name, passive=True)
            except aio_pika.exceptions.ChannelClosed:
                kind = "exchange" if isinstance(obj, ExchangeObj) else "queue"
                problems.append(f"{kind} {obj.name} is missing (run `rabbitrun topology declare`)")
            finally:
                if not channel.is_closed:
                    await channel.close()
    finally:
        await connection.close()
    return problems


async def status(settings: Settings, *, listen_s: float | None = None) -> dict[str, Any]:
    """Queues (management API, or a reduced AMQP view when it is unreachable), live workers, DB counts."""
    from rabbitrun.broker.management import ManagementClient, ManagementUnavailable, vhost_of
    from rabbitrun.broker.topology import QueueObj, load_topology, object_specs

    names = Names(settings.broker.prefix)
    topology = load_topology(
        Path(settings.broker.topology_file) if settings.broker.topology_file else None, settings.broker
    )
    wanted = [o.name for o in object_specs(topology, names) if isinstance(o, QueueObj)]
    result: dict[str, Any] = {"management_api": "ok", "queues": []}
    try:
        queues = ManagementClient(str(settings.broker.management_url)).queues(vhost_of(str(settings.broker.url)))
        for q in queues:
            if q["name"] in wanted or q["name"].startswith(names.reply_queue("")):
                stats = q.get("message_stats") or {}
                result["queues"].append(
                    {
                        "name": q["name"],
                        "ready": q.get("messages_ready", 0),
                        "unacked": q.get("messages_unacknowledged", 0),
                        "consumers": q.get("consumers", 0),
                        "publish_rate": (stats.get("publish_details") or {}).get("rate", 0.0),
                        "deliver_rate": (stats.get("deliver_get_details") or {}).get("rate", 0.0),
                    }
                )
    except ManagementUnavailable as exc:
        result["management_api"] = f"unavailable ({exc}); showing depth and consumers over AMQP, no rates"
        result["queues"] = await _queues_over_amqp(settings, wanted)
    result["workers"] = await workers_online(settings, listen_s or settings.worker.heartbeat_interval_s + 0.5)
    result["task_instances"] = await asyncio.to_thread(_db_counts, settings)
    return result


async def _queues_over_amqp(settings: Settings, wanted: list[str]) -> list[dict[str, Any]]:
    connection = await connect(settings.broker, "cli", "status")
    out = []
    try:
        for name in wanted:
            channel = await connection.channel()
            try:
                declared = await channel.declare_queue(name, passive=True)
                ok = declared.declaration_result
                out.append(
                    {
                        "name": name,
                        "ready": ok.message_count,
                        "unacked": None,
                        "consumers": ok.consumer_count,
                        "publish_rate": None,
                        "deliver_rate": None,
                    }
                )
            except aio_pika.exceptions.ChannelClosed:
                out.append({"name": name, "missing": True})
            finally:
                if not channel.is_closed:
                    await channel.close()
    finally:
        await connection.close()
    return out


def _db_counts(settings: Settings) -> dict[str, Any]:
    from rabbitrun.errors import RabbitrunError
    from rabbitrun.models import runs
    from rabbitrun.models.engine import db_errors, make_engine, session_factory

    engine = make_engine(settings.database, pooled=False)
    try:
        with db_errors(engine), session_factory(engine)() as session:
            return runs.task_state_counts(session)
    except RabbitrunError as exc:
        return {"error": str(exc)}
