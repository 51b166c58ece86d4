"""The operator's side of a running system over AMQP and the management API: inspect/control
requests to workers, live events and log lines, broker checks and status.

Replies to control requests come back through RabbitMQ's direct reply-to, so
asking needs no queue of its own; events are read from an exclusive queue bound
on the events exchange for as long as the command runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from rabbitrun import protocol
from rabbitrun.broker.connection import connect
from rabbitrun.errors import ProtocolError, TopologyError
from rabbitrun.keys import TaskInstanceKey, log_relpath
from rabbitrun.names import (
    APP_ID,
    CONTROL_BROADCAST,
    DIRECT_REPLY_TO,
    Names,
    control_key,
    log_key,
    task_events_pattern,
)
from rabbitrun.settings import Settings


@contextlib.contextmanager
def _topology_declared() -> Iterator[None]:
    """A missing exchange means the topology was never declared here (no worker ever ran either):
    say so with the remedy instead of a raw NOT_FOUND."""
    try:
        yield
    except aio_pika.exceptions.ChannelNotFoundEntity as exc:
        reason = str(exc.args[1] if len(exc.args) > 1 else exc).removeprefix("NOT_FOUND - ")
        raise TopologyError(f"{reason}: run `rabbitrun topology declare`") from exc


async def control(settings: Settings, command: str, args: dict[str, Any] | None = None, *,
                  destination: str | None = None, timeout_s: float = 2.0) -> list[dict[str, Any]]:
    """Send one command to all workers (or ``destination``) and collect replies for ``timeout_s``."""
    with _topology_declared():
        return await _control(settings, command, args, destination, timeout_s)


async def _control(settings: Settings, command: str, args: dict[str, Any] | None, destination: str | None,
                   timeout_s: float) -> list[dict[str, Any]]:
    names = Names(settings.broker.prefix)
    connection = await connect(settings.broker, "cli", f"{command}")
    replies: list[dict[str, Any]] = []
    done = asyncio.Event()
    correlation_id = uuid.uuid4().hex
    try:
        channel = await connection.channel()
        reply_queue = await channel.get_queue(DIRECT_REPLY_TO, ensure=False)

        async def on_reply(message: AbstractIncomingMessage) -> None:
            if message.correlation_id != correlation_id:
                return
            try:
                replies.append(protocol.decode_message(message.body))
            except ProtocolError:
                return
            if destination is not None:
                done.set()

        await reply_queue.consume(on_reply, no_ack=True)
        exchange = await channel.get_exchange(names.control_exchange, ensure=False)
        body = protocol.encode_message(command, args=args or {})
        await exchange.publish(
            aio_pika.Message(body, reply_to=DIRECT_REPLY_TO, correlation_id=correlation_id, app_id=APP_ID,
                             content_type=protocol.CONTENT_TYPE, type=protocol.CONTROL_MESSAGE_TYPE,
                             expiration=timeout_s),
            routing_key=control_key(destination) if destination else CONTROL_BROADCAST)
        try:
            await asyncio.wait_for(done.wait(), timeout_s)
        except TimeoutError:
            pass
    finally:
        await connection.close()
    return sorted(replies, key=lambda r: str(r.get("hostname")))


async def tail(settings: Settings, patterns: list[str], on_event: Callable[[str, dict[str, Any]], bool | None],
               *, duration_s: float | None = None) -> None:
    """Deliver events matching the topic ``patterns`` until ``on_event`` returns True or time is up."""
    with _topology_declared():
        await _tail(settings, patterns, on_event, duration_s)


async def _tail(settings: Settings, patterns: list[str], on_event: Callable[[str, dict[str, Any]], bool | None],
                duration_s: float | None) -> None:
    names = Names(settings.broker.prefix)
    connection = await connect(settings.broker, "cli", "events")
    finished = asyncio.Event()
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for pattern in patterns:
            await queue.bind(names.events_exchange, routing_key=pattern)

        async def on_message(message: AbstractIncomingMessage) -> None:
            try:
                event = protocol.decode_message(message.body)
            except ProtocolError:
                return
            if on_event(message.routing_key or "", event):
                finished.set()

        await queue.consume(on_message, no_ack=True)
        try:
            await asyncio.wait_for(finished.wait(), duration_s)
        except TimeoutError:
            pass
    finally:
        await connection.close()


def follow_patterns(dag_id: str, task_id: str) -> list[str]:
    return [log_key(dag_id, task_id), task_events_pattern(dag_id)]


async def broker_check(settings: Settings) -> list[str]:
    """Problems with the broker and the declared topology (empty when healthy)."""
    from rabbitrun.broker.topology import ExchangeObj, QueueObj, load_topology, object_specs

    names = Names(settings.broker.prefix)
    topology = load_topology(Path(settings.broker.topology_file) if settings.broker.topology_file else None,
                             settings.broker)
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


async def workers_online(settings: Settings, listen_s: float) -> dict[str, dict[str, Any]]:
    """Workers heard on the events exchange within ``listen_s`` (their heartbeat period + margin)."""
    seen: dict[str, dict[str, Any]] = {}

    def on_event(_key: str, event: dict[str, Any]) -> None:
        if event.get("kind") == "heartbeat":
            seen[str(event.get("hostname"))] = {**event, "last_heartbeat_at": time.time()}

    await tail(settings, ["worker.*.heartbeat"], on_event, duration_s=listen_s)
    return seen


async def status(settings: Settings, *, listen_s: float | None = None) -> dict[str, Any]:
    """Queues (management API, or a reduced AMQP view when it is unreachable), live workers, DB counts."""
    from rabbitrun.broker.management import ManagementClient, ManagementUnavailable, vhost_of
    from rabbitrun.broker.topology import QueueObj, load_topology, object_specs

    names = Names(settings.broker.prefix)
    topology = load_topology(Path(settings.broker.topology_file) if settings.broker.topology_file else None,
                             settings.broker)
    wanted = [o.name for o in object_specs(topology, names) if isinstance(o, QueueObj)]
    result: dict[str, Any] = {"management_api": "ok", "queues": []}
    try:
        queues = ManagementClient(str(settings.broker.management_url)).queues(vhost_of(str(settings.broker.url)))
        for q in queues:
            if q["name"] in wanted or q["name"].startswith(names.reply_queue("")):
                stats = q.get("message_stats") or {}
                result["queues"].append({
                    "name": q["name"], "ready": q.get("messages_ready", 0),
                    "unacked": q.get("messages_unacknowledged", 0), "consumers": q.get("consumers", 0),
                    "publish_rate": (stats.get("publish_details") or {}).get("rate", 0.0),
                    "deliver_rate": (stats.get("deliver_get_details") or {}).get("rate", 0.0)})
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
                out.append({"name": name, "ready": ok.message_count, "unacked": None,
                            "consumers": ok.consumer_count, "publish_rate": None, "deliver_rate": None})
            except aio_pika.exceptions.ChannelClosed:
                out.append({"name": name, "missing": True})
            finally:
                if not channel.is_closed:
                    await channel.close()
    finally:
        await connection.close()
    return out


def _db_counts(settings: Settings) -> dict[str, Any]:
    from sqlalchemy import func, select

    from rabbitrun.errors import RabbitrunError
    from rabbitrun.models.engine import db_errors, make_engine, session_factory
    from rabbitrun.models.tables import TaskInstance

    engine = make_engine(settings.database, pooled=False)
    try:
        with db_errors(engine), session_factory(engine)() as session:
            rows = session.execute(select(TaskInstance.state, func.count()).group_by(TaskInstance.state)).all()
        return {state: count for state, count in rows}
    except RabbitrunError as exc:
        return {"error": str(exc)}


async def remote_log(settings: Settings, key: TaskInstanceKey, timeout_s: float = 2.0) -> str | None:
    """Ask live workers for an attempt's log file (for a machine that does not have it)."""
    args = {"dag_id": key.dag_id, "task_id": key.task_id, "run_id": key.run_id, "try_number": key.try_number,
            "map_index": key.map_index}
    for reply in await control(settings, "read_log", args, timeout_s=timeout_s):
        if reply.get("ok") and reply.get("data"):
            return str(reply["data"])
    return None


async def read_attempt_log(settings: Settings, key: TaskInstanceKey) -> tuple[str, str] | None:
    """(where it came from, text) of an attempt's log: the local file, else a live worker's copy."""
    path = Path(settings.logging.base_log_folder) / log_relpath(key)
    if path.is_file():
        return str(path), path.read_text(encoding="utf-8", errors="replace")
    try:
        remote = await remote_log(settings, key)
    except TopologyError:  # no control exchange: no worker ever ran against this broker and prefix
        return None
    return None if remote is None else ("fetched from a live worker over the control exchange", remote)


@dataclass
class LogCursor:
    """How many bytes of one attempt's log file a follower has printed. Live log events carry the
    byte offset of their first line, so what was printed already is skipped exactly and lines that
    repeat the same text are still printed."""

    printed_bytes: int = 0

    def after(self, text: str) -> str:
        """The part of the whole file ``text`` not printed yet; it counts as printed from now on."""
        data = text.encode("utf-8")
        new = data[self.printed_bytes:]
        self.printed_bytes = max(self.printed_bytes, len(data))
        return new.decode("utf-8", "replace")

    def take(self, offset: int | None, lines: list[str]) -> str:
        """The new part of a live event's ``lines`` that start at byte ``offset`` of the file."""
        if offset is None:  # a worker that does not send offsets: print what it sent
            return "".join(f"{line}\n" for line in lines)
        chunk = "".join(f"{line}\n" for line in lines).encode("utf-8")
        skip = max(0, self.printed_bytes - offset)
        self.printed_bytes = max(self.printed_bytes, offset + len(chunk))
        return chunk[skip:].decode("utf-8", "replace")


_FINAL_EVENTS = {"succeeded", "failed", "retried", "skipped", "revoked"}


async def follow(settings: Settings, key: TaskInstanceKey, on_text: Callable[[str], None], *,
                 ended: Callable[[], str | None], check_every_s: float = 1.0, grace_s: float = 2.0) -> str:
    """Print an attempt's log and then its live lines until it ends; returns how it ended.

    Subscribes before reading the file, so no line falls between the two. It stops at the
    attempt's final task event, or when ``ended`` (the DB) says it is over: at once for an attempt
    that had already ended, after ``grace_s`` for one whose final event never comes (its worker
    died). The log is read once more at the end for lines shipped after the final event.
    """
    with _topology_declared():
        return await _follow(settings, key, on_text, ended, check_every_s, grace_s)


async def _follow(settings: Settings, key: TaskInstanceKey, on_text: Callable[[str], None],
                  ended: Callable[[], str | None], check_every_s: float, grace_s: float) -> str:
    names = Names(settings.broker.prefix)
    inbox: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    cursor = LogCursor()
    connection = await connect(settings.broker, "cli", "follow")
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for pattern in follow_patterns(key.dag_id, key.task_id):
            await queue.bind(names.events_exchange, routing_key=pattern)

        async def on_message(message: AbstractIncomingMessage) -> None:
            try:
                inbox.put_nowait((message.routing_key or "", protocol.decode_message(message.body)))
            except ProtocolError:
                return

        await queue.consume(on_message, no_ack=True)
        so_far = await read_attempt_log(settings, key)
        on_text(cursor.after(so_far[1]) if so_far else "")
        final = await _follow_events(inbox, key, cursor, on_text, ended, check_every_s, grace_s)
        at_end = await read_attempt_log(settings, key)
        if at_end is not None:
            on_text(cursor.after(at_end[1]))
        return final
    finally:
        await connection.close()


def _of_attempt(event: dict[str, Any], key: TaskInstanceKey) -> bool:
    return (event.get("run_id"), event.get("task_id"), event.get("try_number"), event.get("map_index", -1)) == (
        key.run_id, key.task_id, key.try_number, key.map_index)


async def _follow_events(inbox: asyncio.Queue[tuple[str, dict[str, Any]]], key: TaskInstanceKey, cursor: LogCursor,
                         on_text: Callable[[str], None], ended: Callable[[], str | None], check_every_s: float,
                         grace_s: float) -> str:
    ended_as = await asyncio.to_thread(ended)
    if ended_as is not None:  # over before we listened: its file is complete, nothing live to wait for
        return ended_as
    loop = asyncio.get_running_loop()
    deadline, next_check = float("inf"), loop.time() + check_every_s
    while loop.time() < deadline:
        if ended_as is None and loop.time() >= next_check:
            ended_as, next_check = await asyncio.to_thread(ended), loop.time() + check_every_s
            if ended_as is not None:  # its final event is due: wait a little for it and its last lines
                deadline = loop.time() + grace_s
        try:
            _key, event = await asyncio.wait_for(inbox.get(), max(0.0, (next_check if ended_as is None else deadline) - loop.time()))
        except TimeoutError:
            continue
        if not _of_attempt(event, key):
            continue
        if event.get("kind") == "log":
            on_text(cursor.take(event.get("offset"), list(event.get("lines") or [])))
        elif event.get("kind") in _FINAL_EVENTS:
            return str(event["kind"])
    return ended_as or "ended"
