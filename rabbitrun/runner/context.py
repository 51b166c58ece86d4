"""What a running task sees: ``context["ti"]`` and the template/context names Airflow gives it.

``ti.xcom_push`` / ``ti.xcom_pull`` and ``var`` / ``conn`` read and write through the
attempt's data access; the context is built once per attempt, just before ``execute``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from rabbitrun.authoring import DAG, BaseOperator, MappedOperator, macros, resolve_params
from rabbitrun.data import access as runtime
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models import outcomes, xcom_values
from rabbitrun.names import TASK_LOGGER
from rabbitrun.protocol import ClaimedAttempt
from rabbitrun.runner import dates
from rabbitrun.runner.configview import TaskConfig
from rabbitrun.settings import Settings

_NO_VALUE: Any = object()


class RuntimeTaskInstance:
    """``context["ti"]``: the attempt as Airflow's TaskInstance presents it to a task."""

    def __init__(
        self,
        key: TaskInstanceKey,
        task: BaseOperator,
        claim: ClaimedAttempt,
        hostname: str,
        access: runtime.DataAccess,
    ) -> None:
        self.key = key
        self.task = task
        self.dag_id, self.task_id, self.run_id = key.dag_id, key.task_id, key.run_id
        self.map_index, self.try_number = key.map_index, key.try_number
        self.max_tries = claim.max_tries
        self.hostname = hostname
        self.queue = claim.queue
        self.log = logging.getLogger(TASK_LOGGER)
        self._access = access
        self.skipped_downstream: list[str] = []  # reported with the attempt's success, recorded by the worker

    def skip_downstream(self, task_ids: Iterable[str]) -> None:
        """Skip these tasks of this DAG run when this attempt succeeds (a branch not taken, a short
        circuit): the worker records them with the success, if they are downstream of this task."""
        for task_id in task_ids:
            if task_id not in self.skipped_downstream:
                self.skipped_downstream.append(task_id)

    def xcom_push(self, key: str, value: Any) -> None:
        self._access.set_xcom(self.key, key, value)

    def xcom_pull(
        self,
        task_ids: str | Sequence[str] | None = None,
        key: str = xcom_values.RETURN_VALUE,
        dag_id: str | None = None,
        run_id: str | None = None,
        default: Any = None,
        map_indexes: int | Sequence[int] | None = None,
    ) -> Any:
        """One task id -> its value; a list -> values in the order asked (None where missing).

        A mapped task's value is the list of its instances' values in map-index
        order (None for an instance that pushed nothing); ``map_indexes`` picks
        instances instead: an int -> that instance's value, a list -> their values.
        """
        ids = [self.task_id] if task_ids is None else [task_ids] if isinstance(task_ids, str) else list(task_ids)
        dag_id, run_id = dag_id or self.dag_id, run_id or self.run_id
        found = self._access.get_xcoms(dag_id, run_id, ids, key)
        maybe = [t for t in ids if self._is_mapped(t, dag_id) is not False] if map_indexes is None else []
        indexes = self._access.mapped_indexes(dag_id, run_id, maybe) if maybe else {}
        if map_indexes is not None:
            values = [_pick(found, tid, map_indexes, default) for tid in ids]
        else:
            values = [
                _value_for(found, tid, indexes.get(tid), bool(self._is_mapped(tid, dag_id)), default) for tid in ids
            ]
        return values[0] if isinstance(task_ids, str) or task_ids is None else values

    def _is_mapped(self, task_id: str, dag_id: str) -> bool | None:
        """Whether a task is mapped, when this task's DAG knows it (None for another DAG's task).
        A mapped task that expanded to nothing still has a list value: []."""
        dag = self.task.dag
        if dag is None or dag.dag_id != dag_id or not dag.has_task(task_id):
            return None
        return isinstance(dag.get_task(task_id), MappedOperator)

    def reschedule_history(self) -> outcomes.RescheduleHistory:
        """For sensors in reschedule mode: when this try's first poke started, and how many
        reschedules it has had (its timeout counts from that first poke)."""
        return self._access.reschedule_history(self.key)

    def __repr__(self) -> str:
        return f"<TaskInstance {self.key}>"


def _value_for(
    found: dict[tuple[str, int], Any], task_id: str, indexes: list[int] | None, mapped: bool, default: Any
) -> Any:
    if indexes:
        return [found.get((task_id, mi)) for mi in indexes]
    if mapped:
        return []
    return found.get((task_id, -1), default)


def _pick(found: dict[tuple[str, int], Any], task_id: str, map_indexes: int | Sequence[int], default: Any) -> Any:
    if isinstance(map_indexes, int):
        return found.get((task_id, map_indexes), default)
    return [found.get((task_id, mi), default) for mi in map_indexes]


class _VariableAccessor:
    """``context["var"]["value"]`` / ``["json"]``, and ``var.value.name`` in templates."""

    def __init__(self, access: runtime.DataAccess, as_json: bool) -> None:
        self._access, self._json = access, as_json

    def get(self, key: str, default_var: Any = _NO_VALUE) -> Any:
        if default_var is _NO_VALUE:
            return self._access.variables.get(key, deserialize_json=self._json)
        return self._access.variables.get(key, default_var, deserialize_json=self._json)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):  # copy/pickle/template engines probe dunders: not a variable lookup
            raise AttributeError(key)
        return self.get(key)


class _ConnectionAccessor:
    """``context["conn"].my_db`` / ``.get("my_db")``."""

    def __init__(self, access: runtime.DataAccess) -> None:
        self._access = access

    def get(self, conn_id: str) -> Any:
        return self._access.connections.get(conn_id)

    def __getattr__(self, conn_id: str) -> Any:
        if conn_id.startswith("__"):  # copy/pickle/template engines probe dunders: not a connection lookup
            raise AttributeError(conn_id)
        return self.get(conn_id)


class RuntimeDagRun(SimpleNamespace):
    """``context["dag_run"]``: the run row as Airflow's DagRun shows it; ``conf`` is a dict, dates
    are pendulum DateTimes (as Airflow gives them), ``external_trigger`` is True for a manual run."""

    conf: dict[str, Any]

    def __init__(self, row: Mapping[str, Any]) -> None:
        values = {k: dates.as_pendulum(v) if isinstance(v, datetime) else v for k, v in row.items()}
        conf = values.get("conf")
        values["conf"] = dict(conf) if isinstance(conf, Mapping) else json.loads(str(conf or "{}"))
        values.setdefault("run_type", "manual")
        values["external_trigger"] = values["run_type"] == "manual"
        values["execution_date"] = values.get("logical_date")
        super().__init__(**values)

    def __repr__(self) -> str:
        return f"<DagRun {getattr(self, 'dag_id', '?')} @ {getattr(self, 'logical_date', '?')}: {self.run_id}>"


def build_context(
    ti: RuntimeTaskInstance, dag: DAG, run: RuntimeDagRun, access: runtime.DataAccess, settings: Settings
) -> dict[str, Any]:
    """Every name Airflow 2.10's task context has (its 3.x names too), built once per attempt."""
    conf = run.conf
    # plain values: Param defaults overridden by the conf and checked against their schema
    params = resolve_params({**(getattr(dag, "params", None) or {}), **(ti.task.params or {})}, conf)
    logical_date = dates.as_pendulum(run.logical_date)
    interval_start = dates.as_pendulum(getattr(run, "data_interval_start", None) or logical_date)
    interval_end = dates.as_pendulum(getattr(run, "data_interval_end", None) or logical_date)
    task = ti.task
    context: dict[str, Any] = {
        "ti": ti,
        "task_instance": ti,
        "task": task,
        "dag": dag,
        "dag_run": run,
        "run_id": run.run_id,
        "params": params,
        "conf": TaskConfig(settings),
        "macros": macros,
        "try_number": ti.try_number,
        "map_index_template": getattr(task, "map_index_template", None),
        "expanded_ti_count": None,
        "inlets": list(getattr(task, "inlets", None) or []),
        "outlets": list(getattr(task, "outlets", None) or []),
        "templates_dict": None,
        "test_mode": False,
        "task_instance_key_str": f"{ti.dag_id}__{ti.task_id}__{logical_date.strftime('%Y%m%d')}",
        "var": {"value": _VariableAccessor(access, False), "json": _VariableAccessor(access, True)},
        "conn": _ConnectionAccessor(access),
    }
    manual = bool(getattr(run, "external_trigger", True))
    context.update(dates.date_names(logical_date, interval_start, interval_end, manual=manual))
    return context
