"""An attempt's log as the operator reads it: which attempt, where its per-try file is, whether it
ended; the file, else a live worker's copy over the control exchange; and following its live lines.

The live half speaks AMQP, but this module imports neither asyncio, aio-pika nor the protocol
until it is called: ``from rabbitrun import client`` stays lean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rabbitrun import protocol
from rabbitrun.client.dags import known_dag
from rabbitrun.client.db import sessions_for
from rabbitrun.client.runs import run_progress
from rabbitrun.errors import DagRunNotFound, LogNotFound, ProtocolError, TaskNotFound, TopologyError
from rabbitrun.keys import TaskInstanceKey, attempt_log_path
from rabbitrun.names import Names, log_key, task_events_pattern
from rabbitrun.settings import Settings
from rabbitrun.states import TaskState

if TYPE_CHECKING:
    import asyncio

    from aio_pika.abc import AbstractIncomingMessage


def read_log(
    settings: Settings, dag_id: str, task_id: str, run_id: str, *, try_number: int | None = None, map_index: int = -1
) -> tuple[Path, str]:
    """The local per-try log file of an attempt (the latest try when none is given)."""
    from rabbitrun.models import attempts

    if try_number is None:
        with sessions_for(settings)() as session:
            ti = attempts.get_ti(session, TaskInstanceKey(dag_id, task_id, run_id, map_index))
        if ti is None:
            raise TaskNotFound(dag_id, task_id) if dag_id else DagRunNotFound(dag_id, run_id)
        try_number = max(ti.try_number, 1)
    path = attempt_log_path(
        settings.logging.base_log_folder, TaskInstanceKey(dag_id, task_id, run_id, map_index, try_number)
    )
    if not path.is_file():
        raise LogNotFound(f"no log for {dag_id}.{task_id} run={run_id} try={try_number} at {path}")
    return path, path.read_text(encoding="utf-8", errors="replace")


def attempt_key(
    settings: Settings, dag_id: str, task_id: str, run_id: str, *, try_number: int | None = None, map_index: int = -1
) -> TaskInstanceKey:
    """The key of one attempt of a known task instance (the latest try when none is given);
    an unknown DAG, run or task is a DagError (exit 2)."""
    from rabbitrun.models import attempts

    with sessions_for(settings)() as session:
        ti = attempts.get_ti(session, TaskInstanceKey(dag_id, task_id, run_id, map_index))
    if ti is None:
        known_dag(settings, dag_id)
        run_progress(settings, dag_id, run_id)  # raises DagRunNotFound
        raise TaskNotFound(dag_id, task_id)
    return TaskInstanceKey(dag_id, task_id, run_id, map_index, try_number or max(ti.try_number, 1))


def log_path(settings: Settings, key: TaskInstanceKey) -> Path:
    return attempt_log_path(settings.logging.base_log_folder, key)


def attempt_ended(settings: Settings, key: TaskInstanceKey) -> str | None:
    """The state attempt ``key`` ended in, or None while it may still run (not started, queued,
    running). A later try, or the same try back to none/scheduled (cleared), means it ended."""
    from rabbitrun.models import attempts
    from rabbitrun.states import TaskState

    with sessions_for(settings)() as session:
        ti = attempts.get_ti(session, key)
    if ti is None or ti.try_number > key.try_number:
        return "ended"
    if ti.try_number < key.try_number or ti.state in (TaskState.QUEUED.value, TaskState.RUNNING.value):
        return None
    return str(ti.state)


# --- from live workers, over AMQP ---------------------------------------------------------------


def follow_patterns(dag_id: str, task_id: str) -> list[str]:
    return [log_key(dag_id, task_id), task_events_pattern(dag_id)]


async def remote_log(settings: Settings, key: TaskInstanceKey, timeout_s: float = 2.0) -> str | None:
    """Ask live workers for an attempt's log file (for a machine that does not have it)."""
    from rabbitrun.client.control import control

    args = {
        "dag_id": key.dag_id,
        "task_id": key.task_id,
        "run_id": key.run_id,
        "try_number": key.try_number,
        "map_index": key.map_index,
    }
    for reply in await control(settings, "read_log", args, timeout_s=timeout_s):
        if reply.ok and reply.data:
            return str(reply.data)
    return None


async def read_attempt_log(settings: Settings, key: TaskInstanceKey) -> tuple[str, str] | None:
    """(where it came from, text) of an attempt's log: the local file, else a live worker's copy."""
    path = attempt_log_path(settings.logging.base_log_folder, key)
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
        new = data[self.printed_bytes :]
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


def _final_kind(event: protocol.Event, key: TaskInstanceKey) -> str | None:
    """The kind of ``event`` when it ends the attempt ``key`` on this worker (a reschedule does not:
    the sensor's next poke writes to the same log), else None."""
    if isinstance(event, protocol.TaskRevoked) and event.key == key:
        return event.KIND
    if isinstance(event, protocol.TaskEnded) and event.key == key and event.state != TaskState.UP_FOR_RESCHEDULE:
        return event.kind
    return None


async def follow(
    settings: Settings,
    key: TaskInstanceKey,
    on_text: Callable[[str], None],
    *,
    ended: Callable[[], str | None],
    check_every_s: float = 1.0,
    grace_s: float = 2.0,
) -> str:
    """Print an attempt's log and then its live lines until it ends; returns how it ended.

    Subscribes before reading the file, so no line falls between the two. It stops at the
    attempt's final task event, or when ``ended`` (the DB) says it is over: at once for an attempt
    that had already ended, after ``grace_s`` for one whose final event never comes (its worker
    died). The log is read once more at the end for lines shipped after the final event.
    """
    from rabbitrun.client.control import topology_declared

    with topology_declared():
        return await _follow(settings, key, on_text, ended, check_every_s, grace_s)


async def _follow(
    settings: Settings,
    key: TaskInstanceKey,
    on_text: Callable[[str], None],
    ended: Callable[[], str | None],
    check_every_s: float,
    grace_s: float,
) -> str:
    import asyncio

    from rabbitrun.broker.connection import connect

    names = Names(settings.broker.prefix)
    inbox: asyncio.Queue[protocol.Event] = asyncio.Queue()
    cursor = LogCursor()
    connection = await connect(settings.broker, "cli", "follow")
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for pattern in follow_patterns(key.dag_id, key.task_id):
            await queue.bind(names.events_exchange, routing_key=pattern)

        async def on_message(message: AbstractIncomingMessage) -> None:
            try:
                inbox.put_nowait(protocol.decode_event(message.body))
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


async def _follow_events(
    inbox: asyncio.Queue[protocol.Event],
    key: TaskInstanceKey,
    cursor: LogCursor,
    on_text: Callable[[str], None],
    ended: Callable[[], str | None],
    check_every_s: float,
    grace_s: float,
) -> str:
    import asyncio

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
            event = await asyncio.wait_for(
                inbox.get(), max(0.0, (next_check if ended_as is None else deadline) - loop.time())
            )
        except TimeoutError:
            continue
        if isinstance(event, protocol.LogLines) and event.key == key:
            on_text(cursor.take(event.offset, list(event.lines)))
        elif (kind := _final_kind(event, key)) is not None:
            return kind
    return ended_as or "ended"
