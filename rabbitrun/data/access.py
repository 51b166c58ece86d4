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
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from rabbitrun.data import connections
from rabbitrun.data.connections import ConnectionStore
from rabbitrun.data.variables import MISSING, VariableStore
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models import xcom
from rabbitrun.secrets import Cipher, SecretsMasker
from rabbitrun.settings import Settings, load_settings

__all__ = ["Connection", "DataAccess", "Variable", "XCom", "activate", "build", "current", "deactivate"]


@dataclass(frozen=True)
class DataAccess:
    settings: Settings
    sessions: sessionmaker[Session]
    cipher: Cipher
    variables: VariableStore
    connections: ConnectionStore[Connection]
    xcom_backend: xcom.XComBackend


def build(settings: Settings, sessions: sessionmaker[Session], masker: SecretsMasker | None = None) -> DataAccess:
    cipher = Cipher(settings.core.fernet_key)
    return DataAccess(
        settings,
        sessions,
        cipher,
        VariableStore(settings, sessions, cipher, masker),
        ConnectionStore(settings, sessions, cipher, masker, value_type=Connection),
        xcom.load_backend(settings.core.xcom_backend, settings),
    )


_current: contextvars.ContextVar[DataAccess | None] = contextvars.ContextVar("rabbitrun_data", default=None)


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
    def get_one(*, dag_id: str, run_id: str, task_id: str, key: str = xcom.RETURN_VALUE, map_index: int = -1) -> Any:
        access = current()
        with access.sessions() as session:
            found = xcom.get_xcoms(
                session,
                dag_id,
                run_id,
                [task_id],
                key,
                allow_pickle=access.settings.core.enable_xcom_pickling,
                backend=access.xcom_backend,
            )
        return found.get((task_id, map_index))

    @staticmethod
    def set(*, key: str, value: Any, dag_id: str, task_id: str, run_id: str, map_index: int = -1) -> None:
        access = current()
        with access.sessions() as session:
            xcom.set_xcom(
                session,
                TaskInstanceKey(dag_id, task_id, run_id, map_index),
                key,
                value,
                allow_pickle=access.settings.core.enable_xcom_pickling,
                max_bytes=access.settings.core.max_xcom_size,
                backend=access.xcom_backend,
            )
            session.commit()
