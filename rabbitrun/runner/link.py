"""The task process's side of the task channel: its data access and its finish, asked of its worker.

A task process holds no DB URL, no Fernet key and no broker credentials (DESIGN.md, "Task process
boundary"). ``Variable.get``, ``Connection.get`` and XComs in a task reach :class:`RemoteAccess`,
which sends a typed request (``rabbitrun.protocol.channel``) on the socket the worker handed this
process with its run frame, and waits for the one reply. The worker decrypts; this side registers
what it receives for masking, as the DB's own access does.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NoReturn

from rabbitrun import protocol
from rabbitrun.data.access import Connection, DataAccess
from rabbitrun.data.connections import ConnectionStore
from rabbitrun.data.variables import VariableStore
from rabbitrun.errors import (
    AccessDenied,
    ConnectionNotFound,
    ProtocolError,
    SecretsError,
    TaskChannelError,
    VariableNotFound,
    XComError,
)
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models import outcomes, xcom_values
from rabbitrun.protocol import DataOp
from rabbitrun.protocol.codec import dt, ts
from rabbitrun.secrets import SecretsMasker
from rabbitrun.settings import Settings


class WorkerLink:
    """One request at a time on the socket to the worker (a lock: a task may use threads)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self._buffer = bytearray()

    def send(self, frame: protocol.ChannelFrame) -> None:
        with self._lock:
            self._sock.sendall(protocol.encode_channel_frame(frame))

    def call(self, frame: protocol.ChannelFrame) -> protocol.ChannelFrame:
        with self._lock:
            self._sock.sendall(protocol.encode_channel_frame(frame))
            while True:
                frames = protocol.split_channel_frames(self._buffer)
                if frames:
                    return frames[0]  # strictly one reply per request: nothing else can be queued
                data = self._sock.recv(1 << 20)
                if not data:
                    raise TaskChannelError("the worker closed the task channel (it is shutting down or gone)")
                self._buffer.extend(data)

    def data(self, op: DataOp, **args: Any) -> Any:
        reply = self.call(protocol.DataRequest(op, args))
        if not isinstance(reply, protocol.DataReply):
            raise ProtocolError(f"the worker answered a {op.value} request with a {reply.KIND!r} frame")
        if reply.error_type or reply.error:
            _raise(reply, args)
        return reply.value

    def finish(self, frame: protocol.FinishFrame) -> protocol.FinishReply:
        reply = self.call(frame)
        if not isinstance(reply, protocol.FinishReply):
            raise ProtocolError(f"the worker answered a finish with a {reply.KIND!r} frame")
        return reply


def _raise(reply: protocol.DataReply, args: dict[str, Any]) -> NoReturn:
    """The worker's refusal as the exception the task would see with the DB's own access."""
    if reply.error_type == "VariableNotFound":
        raise VariableNotFound(str(args.get("key", "")))
    if reply.error_type == "ConnectionNotFound":
        raise ConnectionNotFound(str(args.get("conn_id", "")))
    kinds: dict[str, type[Exception]] = {
        "XComError": XComError,
        "SecretsError": SecretsError,
        "AccessDenied": AccessDenied,
        "ProtocolError": ProtocolError,
    }
    raise kinds.get(reply.error_type, TaskChannelError)(reply.error)


class RemoteVariables(VariableStore):
    """Variables read and written through the worker (it holds the key that decrypts them)."""

    def __init__(self, settings: Settings, link: WorkerLink, masker: SecretsMasker) -> None:
        self._settings, self._masker, self._link = settings, masker, link
        self._cache: dict[str, str | None] = {}

    def _raw(self, key: str) -> str | None:
        if key not in self._cache:
            value = self._link.data(DataOp.GET_VARIABLE, key=key)
            self._cache[key] = None if value is None else str(value)
        return self._cache[key]

    def _write(self, texts: dict[str, tuple[str, str | None]]) -> None:
        for key, (text, description) in texts.items():
            self._link.data(DataOp.SET_VARIABLE, key=key, value=text, description=description)

    def delete(self, key: str) -> bool:
        self._cache.pop(key, None)
        return bool(self._link.data(DataOp.DELETE_VARIABLE, key=key))

    def list(self) -> NoReturn:
        raise AccessDenied("a task reads Variables by key; listing them is for the CLI")


class RemoteConnections(ConnectionStore[Connection]):
    """Connections read through the worker; a task does not write them."""

    def __init__(self, settings: Settings, link: WorkerLink, masker: SecretsMasker) -> None:
        self._settings, self._masker, self._link = settings, masker, link
        self._value_type = Connection
        self._cache: dict[str, Connection] = {}

    def _load(self, conn_id: str) -> Connection:
        fields = self._link.data(DataOp.GET_CONNECTION, conn_id=conn_id)
        if not isinstance(fields, dict):
            raise ProtocolError(f"the worker sent connection {conn_id!r} as {type(fields).__name__}")
        return Connection(**fields)

    def add_many(self, conns: list[Any], *, replace_existing: bool = False) -> NoReturn:
        raise AccessDenied("a task cannot write Connections; use `rabbitrun connections add`")


class RemoteAccess(DataAccess):
    """A task process's data access: every read and write is a request to its worker."""

    def __init__(self, settings: Settings, link: WorkerLink, key: TaskInstanceKey, masker: SecretsMasker) -> None:
        self.settings, self._link, self._key = settings, link, key
        self.variables = RemoteVariables(settings, link, masker)
        self.connections = RemoteConnections(settings, link, masker)
        self.xcom_backend = xcom_values.load_backend(settings.core.xcom_backend, settings)

    def xcom_rows(
        self, dag_id: str, run_id: str, task_ids: Sequence[str], key: str
    ) -> dict[tuple[str, int], tuple[bytes, str]]:
        rows = self._link.data(DataOp.XCOM_ROWS, dag_id=dag_id, run_id=run_id, task_ids=list(task_ids), key=key)
        return {(task_id, map_index): (data, value_type) for task_id, map_index, data, value_type in rows}

    def put_xcom_row(self, ti: TaskInstanceKey, key: str, data: bytes, value_type: str) -> None:
        if ti.with_try(1) != self._key.with_try(1):
            raise AccessDenied(f"task {self._key} cannot push XComs as {ti}: a task pushes its own")
        self._link.data(DataOp.PUT_XCOM, key=key, data=data, value_type=value_type)

    def mapped_indexes(self, dag_id: str, run_id: str, task_ids: Sequence[str]) -> dict[str, list[int]]:
        found = self._link.data(DataOp.MAPPED_INDEXES, dag_id=dag_id, run_id=run_id, task_ids=list(task_ids))
        return {str(task_id): [int(i) for i in indexes] for task_id, indexes in found.items()}

    def reschedule_history(self, key: TaskInstanceKey) -> outcomes.RescheduleHistory:
        first, count = self._link.data(DataOp.RESCHEDULE_HISTORY)
        return outcomes.RescheduleHistory(dt(first, "first_started_at"), int(count))

    def external_states(self, dag_id: str, task_id: str | None, logical_dates: Sequence[datetime]) -> list[str]:
        dates = [ts(d) for d in logical_dates]
        return [str(s) for s in self._link.data(DataOp.EXTERNAL_STATES, dag_id=dag_id, task_id=task_id, dates=dates)]
