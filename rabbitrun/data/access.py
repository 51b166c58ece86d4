"""What a task reads and writes besides its arguments: the data access of the running attempt,
and the Airflow-style ``Variable``, ``Connection`` and ``XCom`` facades over it.

The runner sets one :class:`DataAccess` per attempt in a context variable, so
``Variable.get`` / ``Connection.get`` / ``XCom`` called from anywhere in a task
use the attempt's DB sessions, cipher, caches and secrets masker. Outside an
attempt (a script, the CLI) they build one from this process's settings.

The facades live here, above the stores (``connections``, ``variables``), because
they reach the stores through :func:`current`; the stores never import this module.
"""

from __future__ import annotations

import contextvars
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rabbitrun.data import connections
from rabbitrun.data.connections import ConnectionStore
from rabbitrun.data.variables import MISSING, VariableStore
from rabbitrun.errors import TaskChannelError
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models import outcomes, xcom_values
from rabbitrun.secrets import Cipher, SecretsMasker
from rabbitrun.settings import Settings, load_settings

if TYPE_CHECKING:  # DbAccess imports the DB modules where it uses them: a task process never does
    from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "Connection",
    "DataAccess",
    "DbAccess",
    "Variable",
    "XCom",
    "activate",
    "build",
    "current",
    "deactivate",
    "forbid_direct_db",
]


class DataAccess(ABC):
    """What a running attempt reads and writes besides its arguments.

    Two kinds: :class:`DbAccess` reads the metadata DB (the worker, ``rabbitrun tasks run``, scripts);
    the task process's kind (``rabbitrun.runner.link``) asks its worker over its pipe, because a task
    process holds no DB URL and no Fernet key (DESIGN.md, "Task process boundary"). XCom values are
    serialised on the task's side by its backend: the rows are what crosses the pipe.
    """

    settings: Settings
    variables: VariableStore
    connections: ConnectionStore[Connection]
    xcom_backend: xcom_values.XComBackend

    def get_xcoms(self, dag_id: str, run_id: str, task_ids: Sequence[str], key: str) -> dict[tuple[str, int], Any]:
        """Values by (task_id, map_index) for these task ids and key."""
        rows = self.xcom_rows(dag_id, run_id, task_ids, key)
        return {where: self.xcom_backend.load(data, value_type) for where, (data, value_type) in rows.items()}

    def set_xcom(self, ti: TaskInstanceKey, key: str, value: Any) -> None:
        data, value_type = self.xcom_backend.store(value, key=key, ti=ti)
        self.put_xcom_row(ti, key, data, value_type)

    @abstractmethod
    def xcom_rows(
        self, dag_id: str, run_id: str, task_ids: Sequence[str], key: str
    ) -> dict[tuple[str, int], tuple[bytes, str]]: ...

    @abstractmethod
    def put_xcom_row(self, ti: TaskInstanceKey, key: str, data: bytes, value_type: str) -> None:
        """Store one XCom row (committed)."""

    @abstractmethod
    def mapped_indexes(self, dag_id: str, run_id: str, task_ids: Sequence[str]) -> dict[str, list[int]]: ...

    @abstractmethod
    def reschedule_history(self, key: TaskInstanceKey) -> outcomes.RescheduleHistory: ...

    @abstractmethod
    def external_states(self, dag_id: str, task_id: str | None, logical_dates: Sequence[datetime]) -> list[str]: ...


class DbAccess(DataAccess):
    """The metadata DB's own data access: the worker serves its task processes with it."""

    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], masker: SecretsMasker | None = None
    ) -> None:
        self.settings, self.sessions = settings, sessions
        self.cipher = Cipher(settings.core.fernet_key)
        self.variables = VariableStore(settings, sessions, self.cipher, masker)
        self.connections = ConnectionStore(settings, sessions, self.cipher, masker, value_type=Connection)
        self.xcom_backend = xcom_values.load_backend(settings.core.xcom_backend, settings)

    def xcom_rows(
        self, dag_id: str, run_id: str, task_ids: Sequence[str], key: str
    ) -> dict[tuple[str, int], tuple[bytes, str]]:
        from rabbitrun.models import xcom

        with self.sessions() as session:
            return xcom.get_rows(session, dag_id, run_id, task_ids, key)

    def put_xcom_row(self, ti: TaskInstanceKey, key: str, data: bytes, value_type: str) -> None:
        from rabbitrun.models import xcom

        with self.sessions() as session:
            xcom.put_row(session, ti, key, data, value_type, max_bytes=self.settings.core.max_xcom_size)
            session.commit()

    def mapped_indexes(self, dag_id: str, run_id: str, task_ids: Sequence[str]) -> dict[str, list[int]]:
        from rabbitrun.models import mapping

        with self.sessions() as session:
            return mapping.mapped_indexes(session, dag_id, run_id, task_ids)

    def reschedule_history(self, key: TaskInstanceKey) -> outcomes.RescheduleHistory:
        from rabbitrun.models import attempts

        with self.sessions() as session:
            return attempts.reschedule_history(session, key)

    def external_states(self, dag_id: str, task_id: str | None, logical_dates: Sequence[datetime]) -> list[str]:
        from rabbitrun.models import runs

        with self.sessions() as session:
            return runs.external_states(session, dag_id, task_id, logical_dates)


def build(settings: Settings, sessions: sessionmaker[Session], masker: SecretsMasker | None = None) -> DbAccess:
    return DbAccess(settings, sessions, masker)


_current: contextvars.ContextVar[DataAccess | None] = contextvars.ContextVar("rabbitrun_data", default=None)


_without_db: str | None = None  # set in a task process: there is no DB to fall back to


def forbid_direct_db(where: str) -> None:
    """This process has no metadata DB (a task process, its zygote): ``current()`` outside an
    attempt says so instead of building a DB access from settings it does not have."""
    global _without_db
    _without_db = where


def activate(access: DataAccess) -> contextvars.Token[DataAccess | None]:
    return _current.set(access)


def deactivate(token: contextvars.Token[DataAccess | None]) -> None:
    _current.reset(token)


def current() -> DataAccess:
    """The running attempt's data access; outside an attempt, a fresh one from this process's settings.

    The fallback is built per call and never stored: a scheduler parsing a DAG file that reads a
    Variable at the top level must see the value of now, not of its first parse.
    """
    access = _current.get()
    if access is None:
        if _without_db is not None:
            raise TaskChannelError(
                f"no metadata DB in {_without_db}: Variables, Connections and XComs are served by the worker "
                "while a task runs (not at DAG-file import time)"
            )
        from rabbitrun.models.engine import make_engine, session_factory

        settings = load_settings()
        access = build(settings, session_factory(make_engine(settings.database, pooled=False)))
    return access


class Connection(connections.Connection):
    """Airflow's ``Connection``: the value type, plus ``Connection.get(conn_id)``.

    Built, compared and copied exactly like :class:`rabbitrun.data.connections.Connection`;
    the stores of :func:`build` return this class, so what ``Connection.get`` and
    ``context["conn"]`` give a task compares equal to a ``Connection(...)`` it builds.
    """

    @classmethod
    def get(cls, conn_id: str) -> Connection:
        """The connection as the running attempt (or this process's settings) sees it."""
        return current().connections.get(conn_id)


class Variable:
    """Airflow's ``Variable``: ``Variable.get("key", default_var=..., deserialize_json=...)``.

    In a task it uses the running attempt's sessions, cipher and cache (set by the
    runner in a context variable); elsewhere, this process's settings.
    """

    @staticmethod
    def get(key: str, default_var: Any = MISSING, deserialize_json: bool = False) -> Any:
        return current().variables.get(key, default_var, deserialize_json)

    @staticmethod
    def set(key: str, value: Any, serialize_json: bool = False, description: str | None = None) -> None:
        current().variables.set(key, value, serialize_json, description)

    @staticmethod
    def delete(key: str) -> bool:
        return current().variables.delete(key)


class XCom:
    """Airflow-style access to XComs outside ``ti.xcom_pull`` (e.g. in callbacks or scripts)."""

    @staticmethod
    def get_one(
        *, dag_id: str, run_id: str, task_id: str, key: str = xcom_values.RETURN_VALUE, map_index: int = -1
    ) -> Any:
        return current().get_xcoms(dag_id, run_id, [task_id], key).get((task_id, map_index))

    @staticmethod
    def set(*, key: str, value: Any, dag_id: str, task_id: str, run_id: str, map_index: int = -1) -> None:
        current().set_xcom(TaskInstanceKey(dag_id, task_id, run_id, map_index), key, value)
