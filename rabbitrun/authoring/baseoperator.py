"""BaseOperator: one task of a DAG, its retry policy and its dependencies.

Like Airflow's ``apply_defaults``, the :class:`_OperatorMeta` metaclass fills
every constructor keyword that the caller did not give from the DAG's
``default_args``, for BaseOperator's own keywords and for those of any
subclass, before ``__init__`` runs, so subclasses need no boilerplate.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from rabbitrun.authoring.airflow_args import closest_name_error, removed_sla, warn_unimplemented
from rabbitrun.authoring.dagcontext import OwningDag, OwningGroup, current_dag, current_group, dag_for, validate_id
from rabbitrun.authoring.templating import Templated
from rabbitrun.authoring.trigger_rules import TriggerRule, trigger_rule
from rabbitrun.errors import DagDefinitionError
from rabbitrun.names import DEFAULT_POOL

__all__ = ["BaseOperator", "Context", "Dependable", "EdgeEnds", "EdgeModifier", "Expandable", "PartialFactory"]

#: What ``execute`` receives: ti, dag, run_id, ds, params, ... (built by the runner).
Context = Mapping[str, Any]

_T = TypeVar("_T")


@runtime_checkable
class Dependable(Protocol):
    """Anything that can stand on either side of ``>>``: operators and XComArgs."""

    def as_operators(self) -> list[BaseOperator]: ...


@runtime_checkable
class EdgeEnds(Protocol):
    """A set of tasks that links by its ends (a TaskGroup): its leaves when upstream, roots when downstream."""

    def edge_operators(self, upstream: bool) -> list[BaseOperator]: ...


@runtime_checkable
class EdgeModifier(Protocol):
    """What ``edge_modifier=`` takes (a Label): it records its info on the edge it decorates."""

    def add_edge_info(self, dag: OwningDag[Any], upstream_id: str, downstream_id: str) -> None: ...


class Expandable(Protocol):
    """What ``SomeOperator.partial(...)`` returns: ``.expand(...)`` adds the mapped task."""

    def expand(self, **mapped: Any) -> BaseOperator: ...


class PartialFactory(Protocol):
    """Builds what ``partial()`` returns from the operator class and the partial arguments."""

    def __call__(self, operator_class: type[BaseOperator], kwargs: Mapping[str, Any], /) -> Expandable: ...


class _OperatorMeta(type):
    """Fill constructor kwargs from the DAG's ``default_args`` (Airflow's apply_defaults)."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        defaults = merged_default_args(kwargs)
        if defaults:
            given = _given_names(cls, args, kwargs)
            accepted = _accepted_names(cls)
            for name, value in defaults.items():
                # unknown keys are ignored, as Airflow does: default_args are shared by all operator types
                if name not in given and name in accepted:
                    kwargs[name] = value
        operator = super().__call__(*args, **kwargs)
        operator.link_template_xcom_args()
        return operator


def merged_default_args(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The default_args a task built with ``kwargs`` gets: its DAG's, then its TaskGroup's (inner
    groups win), then the operator's own ``default_args=`` (Airflow's order)."""
    merged: dict[str, Any] = {}
    dag = dag_for(kwargs)
    if dag is not None:
        merged.update(dag.default_args)
    group = kwargs.get("task_group") or current_group()
    if isinstance(group, OwningGroup):
        merged.update(group.default_args)
    merged.update(kwargs.get("default_args") or {})
    return merged


def _accepted_names(cls: type) -> set[str]:
    """Keyword names any ``__init__`` in the MRO declares (subclasses pass **kwargs up)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                names.add(p.name)
    return names


def _given_names(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> set[str]:
    """Names the caller set explicitly, positional ones included."""
    try:
        signature = inspect.signature(getattr(cls, "__init__"))  # noqa: B009 - mypy refuses cls.__init__ on a type
        bound = signature.bind_partial(None, *args, **kwargs)
    except TypeError:
        return set(kwargs)  # let __init__ report the bad call with its own message
    given = set(kwargs)  # names that land in a **kwargs parameter count too
    given.update(n for n in bound.arguments if signature.parameters[n].kind is not inspect.Parameter.VAR_KEYWORD)
    return given


def _as_timedelta(name: str, value: timedelta | float | int | None) -> timedelta | None:
    """Accept seconds as numbers too, as Airflow does for retry_delay."""
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    raise DagDefinitionError(f"{name} must be a timedelta or a number of seconds, got {value!r}")


class BaseOperator(Templated, metaclass=_OperatorMeta):
    """One task: what to run (``execute``) and the policy around it.

    ``queue=None`` means "the configured default queue"; it stays None here
    because authoring does not read settings (the executor resolves it).
    """

    #: Attribute names rendered as templates before ``execute`` (templating comes later).
    template_fields: tuple[str, ...] = ()

    #: What ``partial()`` builds: rabbitrun.authoring.mapped sets its PartialOperator here when
    #: imported (rabbitrun.authoring imports it). A mapped task is itself a BaseOperator, so the
    #: mapping module sits above this one and cannot be imported from here.
    partial_factory: ClassVar[PartialFactory | None] = None

    #: (enter, exit) of a ``with setup >> teardown:`` scope: rabbitrun.authoring.setup_teardown sets
    #: them when imported (it needs the DAG's task list, which this module does not see).
    scope_hooks: ClassVar[tuple[Callable[[BaseOperator], None], Callable[[BaseOperator, bool], None]] | None] = None

    #: ``.output`` builds an XComArg, and template fields are searched for XComArgs to link:
    #: rabbitrun.authoring.xcomarg sets both when imported (it sits above this module).
    output_factory: ClassVar[Callable[[BaseOperator], Any] | None] = None
    xcom_args_finder: ClassVar[Callable[[Any], list[Any]] | None] = None

    # Airflow's remaining arguments, set by _store_airflow_args under Airflow's names
    depends_on_past: bool
    ignore_first_depends_on_past: bool
    wait_for_past_depends_before_skipping: bool
    wait_for_downstream: bool
    start_date: datetime | None
    end_date: datetime | None
    do_xcom_push: bool
    multiple_outputs: bool
    inlets: Any
    outlets: Any
    on_execute_callback: Callable[[Context], Any] | None
    on_skipped_callback: Callable[[Context], Any] | None
    # the pre_execute= / post_execute= callables: stored apart (as Airflow does), so a subclass's
    # pre_execute / post_execute method is not shadowed by the argument's None (runner/execution.py)
    _pre_execute_hook: Callable[[Context], Any] | None
    _post_execute_hook: Callable[[Context, Any], Any] | None
    task_display_name: str | None
    map_index_template: str | None
    weight_rule: str
    max_active_tis_per_dag: int | None
    max_active_tis_per_dagrun: int | None
    task_concurrency: int | None
    email: str | Iterable[str] | None
    email_on_failure: bool
    email_on_retry: bool
    executor: str | None
    executor_config: Mapping[str, Any] | None
    resources: Mapping[str, Any] | None
    run_as_user: str | None
    logger_name: str | None
    allow_nested_operators: bool
    doc_md: str | None
    doc_rst: str | None
    doc_json: str | None
    doc_yaml: str | None

    def __init__(
        self,
        task_id: str,
        *,
        dag: OwningDag[BaseOperator] | None = None,
        retries: int = 0,
        retry_delay: timedelta | float = timedelta(seconds=300),
        retry_exponential_backoff: bool = False,
        max_retry_delay: timedelta | float | None = None,
        execution_timeout: timedelta | float | None = None,
        queue: str | None = None,
        priority_weight: int = 1,
        pool: str | None = None,
        pool_slots: int = 1,
        trigger_rule: TriggerRule | str = TriggerRule.ALL_SUCCESS,
        params: Mapping[str, Any] | None = None,
        owner: str = "rabbitrun",
        doc: str = "",
        on_success_callback: Callable[[Context], Any] | None = None,
        on_failure_callback: Callable[[Context], Any] | None = None,
        on_retry_callback: Callable[[Context], Any] | None = None,
        # --- Airflow's other BaseOperator arguments: stored under Airflow's names ---
        default_args: Mapping[str, Any] | None = None,
        task_group: OwningGroup | None = None,
        depends_on_past: bool = False,
        ignore_first_depends_on_past: bool = True,
        wait_for_past_depends_before_skipping: bool = False,
        wait_for_downstream: bool = False,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        do_xcom_push: bool = True,
        multiple_outputs: bool = False,
        inlets: Any = None,
        outlets: Any = None,
        on_execute_callback: Callable[[Context], Any] | None = None,
        on_skipped_callback: Callable[[Context], Any] | None = None,
        pre_execute: Callable[[Context], Any] | None = None,
        post_execute: Callable[[Context, Any], Any] | None = None,
        task_display_name: str | None = None,
        doc_md: str | None = None,
        doc_rst: str | None = None,
        doc_json: str | None = None,
        doc_yaml: str | None = None,
        map_index_template: str | None = None,
        weight_rule: str = "downstream",
        max_active_tis_per_dag: int | None = None,
        max_active_tis_per_dagrun: int | None = None,
        task_concurrency: int | None = None,
        email: str | Iterable[str] | None = None,
        email_on_failure: bool = True,
        email_on_retry: bool = True,
        executor: str | None = None,
        executor_config: Mapping[str, Any] | None = None,
        resources: Mapping[str, Any] | None = None,
        run_as_user: str | None = None,
        logger_name: str | None = None,
        allow_nested_operators: bool = True,
        sla: timedelta | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise closest_name_error(f"{type(self).__name__} {task_id!r}", unknown, _accepted_names(type(self)))
        if sla is not None:
            raise removed_sla(f"task {task_id!r}", "sla")
        group = task_group if task_group is not None else current_group()
        validate_id("task_id", task_id)
        self.task_id = validate_id("task_id", group.child_id(task_id) if group is not None else task_id)
        self.task_group = group
        self._store_airflow_args(locals())
        # depends_on_past: runs only once the same task of the previous run (by logical date) succeeded
        # or was skipped; wait_for_downstream: and so did that task's direct downstream (implies it)
        self.depends_on_past = bool(depends_on_past) or bool(wait_for_downstream)
        self.wait_for_downstream = bool(wait_for_downstream)
        # setup / teardown (Airflow 2.7+): set by as_setup() / as_teardown(), see authoring/setup_teardown.py
        self.is_setup = False
        self.is_teardown = False
        self.on_failure_fail_dagrun = False
        # called once by the runner after the outcome is recorded; their errors never change it
        self.on_success_callback = on_success_callback
        self.on_failure_callback = on_failure_callback
        self.on_retry_callback = on_retry_callback
        self.retries = _non_negative_int("retries", retries)
        self.retry_delay: timedelta = _as_timedelta("retry_delay", retry_delay) or timedelta(0)
        self.retry_exponential_backoff = bool(retry_exponential_backoff)
        self.max_retry_delay = _as_timedelta("max_retry_delay", max_retry_delay)
        self.execution_timeout = _as_timedelta("execution_timeout", execution_timeout)
        self.queue = queue
        self.priority_weight = _int("priority_weight", priority_weight)
        # a pool that does not exist is found by the scheduler (pools live in the DB), which fails the task
        self.pool = _pool_name(pool)
        self.pool_slots = _positive_int("pool_slots", pool_slots)
        self.trigger_rule = _trigger_rule(trigger_rule)
        self.owner = owner
        self.doc = doc
        self._upstream: set[str] = set()
        self._downstream: set[str] = set()
        self.dag: OwningDag[BaseOperator] | None = None
        if dag is None:
            dag = current_dag() or (group.dag if group is not None else None)
        self.params: dict[str, Any] = {**(dag.params if dag else {}), **(params or {})}
        if dag is not None:
            self._attach(dag)
        if group is not None:
            group.add(self)

    @property
    def output(self) -> Any:
        """This task's ``return_value`` as an XComArg (Airflow's ``.output``): pass it to another
        operator's templated argument to pull the value at run time and make this task upstream."""
        factory = BaseOperator.output_factory
        if factory is None:
            raise DagDefinitionError(".output is unavailable: rabbitrun.authoring.xcomarg was not imported")
        return factory(self)

    def link_template_xcom_args(self) -> None:
        """Make the producers of XComArgs given in template fields upstream (Airflow does the same)."""
        finder = BaseOperator.xcom_args_finder
        if self.dag is None or finder is None:
            return  # a mapped task's instance, built outside its DAG: the mapped task holds the edges
        for name in self.template_fields:
            for arg in finder(getattr(self, name, None)):
                if self not in arg.as_operators():
                    self.set_upstream(arg)

    def _store_airflow_args(self, given: Mapping[str, Any]) -> None:
        """Keep Airflow's remaining arguments under their names (other parts read them) and warn
        once for those nothing here implements."""
        for name in _STORED_ARGS:
            setattr(self, name, given[name])
        self._pre_execute_hook, self._post_execute_hook = given["pre_execute"], given["post_execute"]
        self.doc_md, self.doc_rst, self.doc_json, self.doc_yaml = (
            given["doc_md"],
            given["doc_rst"],
            given["doc_json"],
            given["doc_yaml"],
        )
        # task_concurrency is Airflow's old name of max_active_tis_per_dag
        if given["max_active_tis_per_dag"] is None:
            self.max_active_tis_per_dag = given["task_concurrency"]
        self.task_concurrency = self.max_active_tis_per_dag
        owner = type(self).__name__
        for name, default, why in _UNIMPLEMENTED:
            if given[name] != default:
                warn_unimplemented(owner, name, why)

    def __repr__(self) -> str:
        return f"<Task({type(self).__name__}): {self.task_id}>"

    @classmethod
    def partial(cls, **kwargs: Any) -> Expandable:
        """Fix the arguments shared by a mapped task's instances; ``.expand(...)`` maps the others:
        ``BashOperator.partial(task_id="echo").expand(bash_command=[...])``."""
        factory = BaseOperator.partial_factory
        if factory is None:
            raise DagDefinitionError("task mapping is unavailable: rabbitrun.authoring.mapped was not imported")
        return factory(cls, kwargs)

    def _attach(self, dag: OwningDag[BaseOperator]) -> None:
        dag.add_task(self)
        self.dag = dag

    # --- running ------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        """Do the task's work; a non-None return value becomes the ``return_value`` XCom."""
        raise NotImplementedError(f"{type(self).__name__} must implement execute(self, context)")

    @property
    def log(self) -> logging.Logger:
        """The task logger; the runner routes it to the attempt's log file."""
        return logging.getLogger("rabbitrun.task")

    @property
    def max_tries(self) -> int:
        """Retries allowed after the first try (Airflow's ``max_tries``)."""
        return self.retries

    def retry_delay_for(self, try_number: int) -> timedelta:
        """How long to wait before retrying after try ``try_number`` (1-based) failed.

        With exponential backoff: ``retry_delay * 2**(try_number - 1)``, capped by
        ``max_retry_delay``. Unlike Airflow there is no random jitter, so the
        delay is a pure function of its inputs and easy to test and predict.
        """
        if try_number < 1:
            raise ValueError(f"try_number starts at 1, got {try_number}")
        delay = self.retry_delay
        if self.retry_exponential_backoff:
            # cap the exponent first: 2**huge would overflow timedelta before the cap applies
            delay = _capped_multiply(delay, 2 ** min(try_number - 1, 62), self.max_retry_delay)
        if self.max_retry_delay is not None and delay > self.max_retry_delay:
            delay = self.max_retry_delay
        return delay

    # --- setup / teardown ---------------------------------------------------

    def as_setup(self) -> BaseOperator:
        """Mark this task as a setup task (Airflow 2.7+): a teardown after it runs even if the work
        between them fails."""
        self.is_setup = True
        return self

    def as_teardown(
        self,
        *,
        setups: Dependable | Iterable[Dependable] | None = None,
        on_failure_fail_dagrun: bool | None = None,
    ) -> BaseOperator:
        """Mark this task as a teardown: it runs once everything upstream is done, if one of its setups
        succeeded (trigger rule all_done_setup_success); its failure fails the DAG run only with
        ``on_failure_fail_dagrun=True``. ``setups`` are marked as setups and set upstream of it."""
        self.is_teardown = True
        self.trigger_rule = TriggerRule.ALL_DONE_SETUP_SUCCESS
        if on_failure_fail_dagrun is not None:
            self.on_failure_fail_dagrun = bool(on_failure_fail_dagrun)
        if setups is not None:
            for setup in _operators(setups, upstream=True):
                setup.as_setup()
                self.set_upstream(setup)
        return self

    def __enter__(self) -> BaseOperator:
        """``with setup_task >> teardown_task:``: tasks added in the block run between its setups and
        this teardown (authoring/setup_teardown.py)."""
        if BaseOperator.scope_hooks is None:
            raise DagDefinitionError("setup/teardown scopes are unavailable: rabbitrun.authoring was not imported")
        BaseOperator.scope_hooks[0](self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert BaseOperator.scope_hooks is not None
        BaseOperator.scope_hooks[1](self, exc_info[0] is not None)

    # --- dependencies -------------------------------------------------------

    @property
    def upstream_task_ids(self) -> set[str]:
        return set(self._upstream)

    @property
    def downstream_task_ids(self) -> set[str]:
        return set(self._downstream)

    @property
    def upstream_list(self) -> list[BaseOperator]:
        return [self._dag_or_fail().get_task(t) for t in sorted(self._upstream)]

    @property
    def downstream_list(self) -> list[BaseOperator]:
        return [self._dag_or_fail().get_task(t) for t in sorted(self._downstream)]

    def as_operators(self) -> list[BaseOperator]:
        return [self]

    def set_upstream(self, other: Any, edge_modifier: EdgeModifier | None = None) -> None:
        """``other`` (tasks, XComArgs, TaskGroups or lists of them) runs before this task; an
        ``edge_modifier`` (``Label("...")``) labels each edge made."""
        for op in _operators(other, upstream=True):
            self._link(up=op, down=self, edge_modifier=edge_modifier)

    def set_downstream(self, other: Any, edge_modifier: EdgeModifier | None = None) -> None:
        for op in _operators(other, upstream=False):
            self._link(up=self, down=op, edge_modifier=edge_modifier)

    def __rshift__(self, other: _T) -> _T:
        """``self >> other``: other runs after self; returns other for chaining."""
        if not linkable(other):
            return NotImplemented  # a Label or another modifier takes over through its __rrshift__
        self.set_downstream(other)
        return other

    def __lshift__(self, other: _T) -> _T:
        """``self << other``: other runs before self; returns other for chaining."""
        if not linkable(other):
            return NotImplemented
        self.set_upstream(other)
        return other

    def __rrshift__(self, other: Iterable[Dependable]) -> BaseOperator:
        """``[a, b] >> self``."""
        self.set_upstream(other)
        return self

    def __rlshift__(self, other: Iterable[Dependable]) -> BaseOperator:
        """``[a, b] << self``."""
        self.set_downstream(other)
        return self

    @staticmethod
    def _link(up: BaseOperator, down: BaseOperator, edge_modifier: EdgeModifier | None = None) -> None:
        """Record an edge, putting a DAG-less task into its partner's DAG."""
        if up is down:
            raise DagDefinitionError(f"task {up.task_id!r} cannot depend on itself")
        if up.dag is not None and down.dag is not None and up.dag is not down.dag:
            raise DagDefinitionError(
                f"tasks {up.task_id!r} (DAG {up.dag.dag_id!r}) and {down.task_id!r} "
                f"(DAG {down.dag.dag_id!r}) are in different DAGs"
            )
        if up.dag is None and down.dag is not None:
            up._attach(down.dag)
        elif down.dag is None and up.dag is not None:
            down._attach(up.dag)
        up._downstream.add(down.task_id)
        down._upstream.add(up.task_id)
        if edge_modifier is not None:
            owner = up.dag or down.dag
            if owner is None:
                raise DagDefinitionError(f"cannot label the edge {up.task_id!r} -> {down.task_id!r}: no DAG")
            edge_modifier.add_edge_info(owner, up.task_id, down.task_id)

    def _dag_or_fail(self) -> OwningDag[BaseOperator]:
        if self.dag is None:
            raise DagDefinitionError(f"task {self.task_id!r} is not assigned to a DAG")
        return self.dag


#: Stored as given under Airflow's name (the doc_* ones and task_concurrency are set apart).
_STORED_ARGS = (
    "depends_on_past",
    "ignore_first_depends_on_past",
    "wait_for_past_depends_before_skipping",
    "wait_for_downstream",
    "start_date",
    "end_date",
    "do_xcom_push",
    "multiple_outputs",
    "inlets",
    "outlets",
    "on_execute_callback",
    "on_skipped_callback",
    "task_display_name",
    "map_index_template",
    "weight_rule",
    "max_active_tis_per_dag",
    "max_active_tis_per_dagrun",
    "email",
    "email_on_failure",
    "email_on_retry",
    "executor",
    "executor_config",
    "resources",
    "run_as_user",
    "logger_name",
    "allow_nested_operators",
)

#: (argument, its default, why it does nothing): a value other than the default logs one warning.
_UNIMPLEMENTED: tuple[tuple[str, Any, str], ...] = (
    ("email", None, "rabbitrun sends no e-mail; use on_failure_callback"),
    ("email_on_failure", True, "rabbitrun sends no e-mail; use on_failure_callback"),
    ("email_on_retry", True, "rabbitrun sends no e-mail; use on_retry_callback"),
    ("executor", None, "every task runs on the RabbitMQ executor"),
    ("executor_config", None, "every task runs on the RabbitMQ executor"),
    ("resources", None, "use pools and queues to limit what runs where"),
    ("run_as_user", None, "tasks run as the worker's user"),
    ("weight_rule", "downstream", "priority_weight is used as given"),
    ("max_active_tis_per_dag", None, "use a pool to limit a task's concurrency"),
    ("max_active_tis_per_dagrun", None, "use a pool to limit a task's concurrency"),
    ("task_concurrency", None, "use a pool to limit a task's concurrency"),
)


def linkable(other: Any) -> bool:
    """Whether ``>>`` can link ``other`` directly (tasks, groups, XComArgs, lists of them)."""
    if isinstance(other, (Dependable, EdgeEnds)):
        return True
    return isinstance(other, Iterable) and not isinstance(other, (str, bytes, Mapping))


def _operators(other: Any, upstream: bool) -> list[BaseOperator]:
    """The tasks an edge to ``other`` reaches: a group's leaves as upstream, its roots as downstream."""
    if isinstance(other, EdgeEnds):
        return other.edge_operators(upstream)
    if isinstance(other, Dependable):
        return other.as_operators()
    if isinstance(other, Iterable) and not isinstance(other, (str, bytes, Mapping)):
        ops: list[BaseOperator] = []
        for item in other:
            if isinstance(item, EdgeEnds):
                ops.extend(item.edge_operators(upstream))
            elif isinstance(item, Dependable):
                ops.extend(item.as_operators())
            else:
                raise DagDefinitionError(f"cannot set a dependency on {item!r}: not a task")
        return ops
    raise DagDefinitionError(f"cannot set a dependency on {other!r}: not a task")


def _capped_multiply(delay: timedelta, factor: int, cap: timedelta | None) -> timedelta:
    try:
        return delay * factor
    except OverflowError:
        return cap if cap is not None else timedelta.max


def _trigger_rule(value: TriggerRule | str) -> TriggerRule:
    try:
        return trigger_rule(value)
    except ValueError as exc:
        raise DagDefinitionError(str(exc)) from None


def _int(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise DagDefinitionError(f"{name} must be an integer, got {value!r}")
    return value


def _pool_name(value: str | None) -> str:
    if value is None:
        return DEFAULT_POOL
    if not isinstance(value, str) or not value.strip():
        raise DagDefinitionError(f"pool must be a non-empty pool name, got {value!r}")
    return value


def _positive_int(name: str, value: int) -> int:
    if _int(name, value) < 1:
        raise DagDefinitionError(f"{name} must be >= 1, got {value!r}")
    return value


def _non_negative_int(name: str, value: int) -> int:
    if _int(name, value) < 0:
        raise DagDefinitionError(f"{name} must be >= 0, got {value!r}")
    return value
