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
from datetime import timedelta
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from rabbitrun.authoring.dagcontext import OwningDag, current_dag, dag_for, validate_id
from rabbitrun.authoring.templating import Templated
from rabbitrun.authoring.trigger_rules import TriggerRule
from rabbitrun.errors import DagDefinitionError
from rabbitrun.names import DEFAULT_POOL

__all__ = ["BaseOperator", "Context", "Dependable", "Expandable", "PartialFactory"]

#: What ``execute`` receives: ti, dag, run_id, ds, params, ... (built by the runner).
Context = Mapping[str, Any]

_T = TypeVar("_T")


@runtime_checkable
class Dependable(Protocol):
    """Anything that can stand on either side of ``>>``: operators and XComArgs."""

    def as_operators(self) -> list[BaseOperator]: ...


class Expandable(Protocol):
    """What ``SomeOperator.partial(...)`` returns: ``.expand(...)`` adds the mapped task."""

    def expand(self, **mapped: Any) -> BaseOperator: ...


class PartialFactory(Protocol):
    """Builds what ``partial()`` returns from the operator class and the partial arguments."""

    def __call__(self, operator_class: type[BaseOperator], kwargs: Mapping[str, Any], /) -> Expandable: ...


class _OperatorMeta(type):
    """Fill constructor kwargs from the DAG's ``default_args`` (Airflow's apply_defaults)."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        dag = dag_for(kwargs)
        if dag is not None and dag.default_args:
            given = _given_names(cls, args, kwargs)
            accepted = _accepted_names(cls)
            for name, value in dag.default_args.items():
                if name not in given and name in accepted:
                    kwargs[name] = value
        return super().__call__(*args, **kwargs)


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
    ) -> None:
        self.task_id = validate_id("task_id", task_id)
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
        dag = dag if dag is not None else current_dag()
        self.params: dict[str, Any] = {**(dag.params if dag else {}), **(params or {})}
        if dag is not None:
            self._attach(dag)

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

    def set_upstream(self, other: Dependable | Iterable[Dependable]) -> None:
        for op in _operators(other):
            self._link(up=op, down=self)

    def set_downstream(self, other: Dependable | Iterable[Dependable]) -> None:
        for op in _operators(other):
            self._link(up=self, down=op)

    def __rshift__(self, other: _T) -> _T:
        """``self >> other``: other runs after self; returns other for chaining."""
        self.set_downstream(other)  # type: ignore[arg-type]
        return other

    def __lshift__(self, other: _T) -> _T:
        """``self << other``: other runs before self; returns other for chaining."""
        self.set_upstream(other)  # type: ignore[arg-type]
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
    def _link(up: BaseOperator, down: BaseOperator) -> None:
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

    def _dag_or_fail(self) -> OwningDag[BaseOperator]:
        if self.dag is None:
            raise DagDefinitionError(f"task {self.task_id!r} is not assigned to a DAG")
        return self.dag


def _operators(other: Dependable | Iterable[Dependable]) -> list[BaseOperator]:
    if isinstance(other, Dependable):
        return other.as_operators()
    if isinstance(other, Iterable) and not isinstance(other, (str, bytes, Mapping)):
        ops: list[BaseOperator] = []
        for item in other:
            if not isinstance(item, Dependable):
                raise DagDefinitionError(f"cannot set a dependency on {item!r}: not a task")
            ops.extend(item.as_operators())
        return ops
    raise DagDefinitionError(f"cannot set a dependency on {other!r}: not a task")


def _capped_multiply(delay: timedelta, factor: int, cap: timedelta | None) -> timedelta:
    try:
        return delay * factor
    except OverflowError:
        return cap if cap is not None else timedelta.max


def _trigger_rule(value: TriggerRule | str) -> TriggerRule:
    try:
        return TriggerRule(value)
    except ValueError:
        valid = ", ".join(r.value for r in TriggerRule)
        raise DagDefinitionError(f"unknown trigger_rule {value!r}; valid: {valid}") from None


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
