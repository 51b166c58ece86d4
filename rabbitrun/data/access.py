"""What a task reads and writes besides its arguments: the data access of the running attempt.

The runner sets one :class:`DataAccess` per attempt in a context variable, so
``Variable.get`` / ``Connection.get`` / ``XCom`` called from anywhere in a task
use the attempt's DB sessions, cipher, caches and secrets masker. Outside an
attempt (a script, the CLI) they build one from this process's settings.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from rabbitrun.data.connections import ConnectionStore
from rabbitrun.data.variables import Variable, VariableStore
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models import xcom
from rabbitrun.secrets import Cipher, SecretsMasker
from rabbitrun.settings import Settings, load_settings

__all__ = ["DataAccess", "Variable", "XCom", "activate", "build", "current", "deactivate"]


@dataclass(frozen=True)
class DataAccess:
    settings: Settings
    sessions: sessionmaker[Session]
    cipher: Cipher
    variables: VariableStore
    connections: ConnectionStore
    xcom_backend: xcom.XComBackend


def build(settings: Settings, sessions: sessionmaker[Session], masker: SecretsMasker | None = None) -> DataAccess:
    cipher = Cipher(settings.core.fernet_key)
    return DataAccess(settings, sessions, cipher, VariableStore(settings, sessions, cipher, masker),
                      ConnectionStore(settings, sessions, cipher, masker),
                      xcom.load_backend(settings.core.xcom_backend, settings))


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


class XCom:
    """Airflow-style access to XComs outside ``ti.xcom_pull`` (e.g. in callbacks or scripts)."""

    @staticmethod
    def get_one(*, dag_id: str, run_id: str, task_id: str, key: str = xcom.RETURN_VALUE,
                map_index: int = -1) -> Any:
        access = current()
        with access.sessions() as session:
            found = xcom.get_xcoms(session, dag_id, run_id, [task_id], key,
                                   allow_pickle=access.settings.core.enable_xcom_pickling,
                                   backend=access.xcom_backend)
        return found.get((task_id, map_index))

    @staticmethod
    def set(*, key: str, value: Any, dag_id: str, task_id: str, run_id: str, map_index: int = -1) -> None:
        access = current()
        with access.sessions() as session:
            xcom.set_xcom(session, TaskInstanceKey(dag_id, task_id, run_id, map_index), key, value,
                          allow_pickle=access.settings.core.enable_xcom_pickling,
                          max_bytes=access.settings.core.max_xcom_size, backend=access.xcom_backend)
            session.commit()
