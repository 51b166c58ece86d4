"""The DAG: a named graph of tasks plus the scheduling facts the scheduler needs.

Operators attach themselves to the DAG that is "current" while they are
created (``with DAG(...):``); that stack lives in
:mod:`rabbitrun.authoring.dagcontext`, below this module and the operators.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from contextvars import Token
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from rabbitrun.authoring import dagcontext
from rabbitrun.authoring.airflow_args import closest_name_error, removed_sla, warn_unimplemented
from rabbitrun.authoring.baseoperator import BaseOperator
from rabbitrun.authoring.dagcontext import OwningDag, validate_id
from rabbitrun.errors import DagDefinitionError, TaskNotFound

__all__ = ["DAG", "get_current_dag"]


def get_current_dag() -> DAG | None:
    """Return the innermost DAG entered with ``with`` in this context, if any."""
    dag = dagcontext.current_dag()
    return dag if isinstance(dag, DAG) else None  # only DAG.__enter__ pushes, so always a DAG


class DAG:
    """A directed acyclic graph of tasks, as in Airflow.

    ``schedule`` is kept as given (None, a cron string, a preset such as
    ``"@daily"`` or a timedelta); interpreting it is the scheduler's job.
    """

    def __init__(
        self,
        dag_id: str,
        schedule: str | timedelta | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        default_args: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        description: str = "",
        tags: Iterable[str] = (),
        catchup: bool = False,
        max_active_runs: int = 16,
        max_active_tasks: int = 16,
        on_success_callback: Callable[[Mapping[str, Any]], Any] | None = None,
        on_failure_callback: Callable[[Mapping[str, Any]], Any] | None = None,
        xcom_pull_from: Iterable[str] = (),
        *,
        # --- Airflow's other DAG arguments (2.10 and 3.x), stored under Airflow's names ---
        schedule_interval: str | timedelta | None = None,
        timetable: Any = None,
        doc_md: str | None = None,
        dag_display_name: str | None = None,
        orientation: str = "LR",
        default_view: str = "grid",
        dagrun_timeout: timedelta | None = None,
        render_template_as_native_obj: bool = False,
        template_searchpath: str | Iterable[str] | None = None,
        template_undefined: Any = None,
        user_defined_macros: Mapping[str, Any] | None = None,
        user_defined_filters: Mapping[str, Callable[..., Any]] | None = None,
        jinja_environment_kwargs: Mapping[str, Any] | None = None,
        access_control: Mapping[str, Any] | None = None,
        is_paused_upon_creation: bool | None = None,
        owner_links: Mapping[str, str] | None = None,
        max_consecutive_failed_dag_runs: int = 0,
        fail_stop: bool = False,
        fail_fast: bool = False,
        auto_register: bool = True,
        concurrency: int | None = None,
        full_filepath: str | None = None,
        disable_bundle_versioning: bool = False,
        deadline: Any = None,
        sla_miss_callback: Callable[..., Any] | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise closest_name_error(f"DAG {dag_id!r}", unknown, _dag_arg_names())
        if sla_miss_callback is not None:
            raise removed_sla(f"DAG {dag_id!r}", "sla_miss_callback")
        self.dag_id = validate_id("dag_id", dag_id)
        from rabbitrun.authoring.timetables import validate  # a bad cron string is a DAG import error, early

        if schedule is None:
            schedule = schedule_interval if schedule_interval is not None else timetable
        if concurrency is not None:
            max_active_tasks = concurrency  # Airflow's old name

        validate(schedule)
        self.schedule = schedule
        self.start_date = start_date
        self.end_date = end_date
        self.default_args: dict[str, Any] = dict(default_args or {})
        self.params: dict[str, Any] = dict(params or {})
        self.description = description
        self.tags: list[str] = list(tags)
        self.catchup = catchup
        self.max_active_runs = _positive_int("max_active_runs", max_active_runs)
        self.max_active_tasks = _positive_int("max_active_tasks", max_active_tasks)
        # run once by the scheduler when a run of this DAG finishes; their errors never change its state
        self.on_success_callback = on_success_callback
        self.on_failure_callback = on_failure_callback
        # A task pulls XComs of its own DAG run only (its worker refuses the rest): these DAG ids
        # (this DAG's own for its other runs, "*" for every DAG) may be read from any of their runs.
        self.xcom_pull_from: tuple[str, ...] = _dag_ids("xcom_pull_from", xcom_pull_from)
        #: The file reference relative to the dags folder; set by the DagBag.
        self.fileloc: str = ""
        self.doc_md = doc_md
        self.dag_display_name = dag_display_name or dag_id
        self.orientation = orientation
        self.default_view = default_view
        # enforced by the scheduler: a run still running this long after it started fails
        self.dagrun_timeout = _timeout("dagrun_timeout", dagrun_timeout)
        self.render_template_as_native_obj = render_template_as_native_obj
        self.template_searchpath: list[str] = (
            [template_searchpath] if isinstance(template_searchpath, str) else list(template_searchpath or [])
        )
        self.template_undefined = template_undefined
        self.user_defined_macros: dict[str, Any] = dict(user_defined_macros or {})
        self.user_defined_filters: dict[str, Callable[..., Any]] = dict(user_defined_filters or {})
        self.jinja_environment_kwargs: dict[str, Any] = dict(jinja_environment_kwargs or {})
        self.access_control = access_control
        self.is_paused_upon_creation = is_paused_upon_creation
        self.owner_links: dict[str, str] = dict(owner_links or {})
        self.max_consecutive_failed_dag_runs = max_consecutive_failed_dag_runs
        self.fail_stop = bool(fail_stop or fail_fast)
        self.fail_fast = self.fail_stop
        # registered by the DagBag when a `with` block or an @dag call ends, not only as a global
        self.auto_register = auto_register
        self.disable_bundle_versioning = disable_bundle_versioning
        self.deadline = deadline
        self._edge_info: dict[tuple[str, str], dict[str, Any]] = {}
        for name, value, default, why in (
            ("access_control", access_control, None, "rabbitrun has no web UI roles"),
            ("is_paused_upon_creation", is_paused_upon_creation, None, "new DAGs follow the scheduler's settings"),
            ("max_consecutive_failed_dag_runs", max_consecutive_failed_dag_runs, 0, "runs are never auto-paused"),
            ("fail_stop", self.fail_stop, False, "a failed task does not stop its run's other tasks"),
            ("deadline", deadline, None, "use dagrun_timeout with on_failure_callback"),
            ("full_filepath", full_filepath, None, "the DagBag sets fileloc"),
        ):
            if value != default:
                warn_unimplemented("DAG", name, why)
        self._task_dict: dict[str, BaseOperator] = {}
        self._positions: dict[str, int] = {}
        self._tokens: list[Token[tuple[OwningDag[Any], ...]]] = []
        if start_date and end_date and end_date < start_date:
            raise DagDefinitionError(f"DAG {dag_id!r}: end_date {end_date} is before start_date {start_date}")

    def __repr__(self) -> str:
        return f"<DAG {self.dag_id} tasks={len(self._task_dict)}>"

    # --- context manager ----------------------------------------------------

    def __enter__(self) -> DAG:
        self._tokens.append(dagcontext.enter(self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        dagcontext.leave(self._tokens.pop())
        if self.auto_register:
            dagcontext.register_dag(self)  # Airflow >= 2.4: a DAG whose `with` block ends is registered

    # --- edges --------------------------------------------------------------

    def set_edge_info(self, upstream_task_id: str, downstream_task_id: str, info: Mapping[str, Any]) -> None:
        """Attach display info (a Label's ``{"label": ...}``) to an edge."""
        self._edge_info[(upstream_task_id, downstream_task_id)] = dict(info)

    def get_edge_info(self, upstream_task_id: str, downstream_task_id: str) -> dict[str, Any]:
        """The edge's info, ``{}`` if none (Airflow's EdgeInfoType)."""
        return dict(self._edge_info.get((upstream_task_id, downstream_task_id), {}))

    # --- tasks --------------------------------------------------------------

    @property
    def tasks(self) -> list[BaseOperator]:
        """Tasks in definition order (dicts keep insertion order)."""
        return list(self._task_dict.values())

    @property
    def task_dict(self) -> dict[str, BaseOperator]:
        return dict(self._task_dict)

    @property
    def task_ids(self) -> list[str]:
        return list(self._task_dict)

    def has_task(self, task_id: str) -> bool:
        return task_id in self._task_dict

    def get_task(self, task_id: str) -> BaseOperator:
        try:
            return self._task_dict[task_id]
        except KeyError:
            raise TaskNotFound(self.dag_id, task_id) from None

    def add_task(self, task: BaseOperator) -> None:
        """Attach ``task``; called by the operator itself, rarely by users."""
        existing = self._task_dict.get(task.task_id)
        if existing is task:
            return
        if existing is not None:
            raise DagDefinitionError(f"DAG {self.dag_id!r} already has a task with task_id {task.task_id!r}")
        self._positions[task.task_id] = len(self._task_dict)
        self._task_dict[task.task_id] = task

    def unique_task_id(self, base: str) -> str:
        """``base``, or ``base__1``, ``base__2``, ... as @task does for repeated calls."""
        if base not in self._task_dict:
            return base
        n = 1
        while f"{base}__{n}" in self._task_dict:
            n += 1
        return f"{base}__{n}"

    @property
    def roots(self) -> list[BaseOperator]:
        """Tasks with no upstream: the ones a new run starts with."""
        return [t for t in self._task_dict.values() if not t.upstream_task_ids]

    @property
    def leaves(self) -> list[BaseOperator]:
        """Tasks with no downstream: the ones whose states decide the run's state."""
        return [t for t in self._task_dict.values() if not t.downstream_task_ids]

    # --- graph checks -------------------------------------------------------

    def topological_sort(self) -> list[BaseOperator]:
        """Tasks ordered so each comes after its upstream; ties keep definition order.

        Raises DagDefinitionError naming one cycle, e.g. ``a -> b -> a``.
        """
        ids, tasks = list(self._task_dict), self._task_dict
        # membership tests per relative, never `set & dict.keys()`: CPython may walk the whole key
        # view for that, which made a 10,000-task DAG take seconds to validate
        remaining = {tid: sum(1 for up in t.upstream_task_ids if up in tasks) for tid, t in tasks.items()}
        ready = [i for i, tid in enumerate(ids) if remaining[tid] == 0]  # a heap of definition positions
        heapq.heapify(ready)
        order: list[BaseOperator] = []
        while ready:
            task = self._task_dict[ids[heapq.heappop(ready)]]
            order.append(task)
            for down in task.downstream_task_ids:
                if down not in remaining:
                    continue
                remaining[down] -= 1
                if remaining[down] == 0:
                    heapq.heappush(ready, self._position(down))
        if len(order) < len(self._task_dict):
            cycle = self._find_cycle({tid for tid, n in remaining.items() if n > 0})
            raise DagDefinitionError(f"DAG {self.dag_id!r} has a cycle: {' -> '.join(cycle)}")
        return order

    def validate(self) -> None:
        """Check what the scheduler relies on: known relatives and no cycle."""
        for task in self._task_dict.values():
            unknown = {t for t in task.upstream_task_ids | task.downstream_task_ids if t not in self._task_dict}
            if unknown:
                raise DagDefinitionError(
                    f"task {task.task_id!r} of DAG {self.dag_id!r} depends on tasks not in the DAG: {sorted(unknown)}"
                )
        self.topological_sort()

    def _position(self, task_id: str) -> int:
        """Definition order of a task (dicts keep insertion order)."""
        return self._positions.get(task_id, len(self._positions))

    def _find_cycle(self, candidates: set[str]) -> list[str]:
        """Walk upstream inside the unsortable tasks until one repeats.

        Every unsortable task has an unsortable upstream (that is why it was
        never ready), so walking upstream always ends on a cycle; walking
        downstream could dead-end at a task merely below a cycle.
        """
        start = min(candidates, key=self._position)
        path: list[str] = [start]
        seen = {start: 0}
        while True:
            nxt = min(self._task_dict[path[-1]].upstream_task_ids & candidates, key=self._position)
            if nxt in seen:
                cycle = [*path[seen[nxt] :], nxt]
                return cycle[::-1]
            seen[nxt] = len(path)
            path.append(nxt)


def _dag_ids(name: str, values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        values = [values]
    ids = tuple(values)
    for value in ids:
        if not isinstance(value, str) or not value:
            raise DagDefinitionError(f"{name} takes DAG ids (or '*'), got {value!r}")
    return ids


def _dag_arg_names() -> list[str]:
    import inspect

    return [p for p in inspect.signature(DAG.__init__).parameters if p not in ("self", "unknown")]


def _timeout(name: str, value: timedelta | float | None) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return timedelta(seconds=value)
    raise DagDefinitionError(f"{name} must be a timedelta or a number of seconds, got {value!r}")


def _positive_int(name: str, value: int) -> int:
    if not isinstance(value, int) or value < 1:
        raise DagDefinitionError(f"{name} must be a positive integer, got {value!r}")
    return value
