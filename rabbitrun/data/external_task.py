"""ExternalTaskSensor: wait for a task (or a whole run) of another DAG, as in Airflow.

It matches the other DAG's run by logical date: this run's logical date, minus
``execution_delta``, or whatever ``execution_date_fn(logical_date, ...)``
returns (a date or a list of dates). It reads the metadata DB through the
running attempt's data access, so it lives beside the runner, not in the pure
authoring package; ``from rabbitrun import ExternalTaskSensor`` loads it lazily.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from rabbitrun.authoring.baseoperator import Context
from rabbitrun.authoring.operators import context_kwargs
from rabbitrun.authoring.sensors import BaseSensorOperator
from rabbitrun.authoring.signals import FailTask, SkipTask
from rabbitrun.errors import DagDefinitionError

__all__ = ["ExternalTaskSensor"]


class ExternalTaskSensor(BaseSensorOperator):
    """Done when the external task (``external_task_id``), or the external run when it is None,
    is in one of ``allowed_states`` (default: success) for every matched logical date."""

    template_fields = ("external_dag_id", "external_task_id")

    def __init__(
        self,
        *,
        external_dag_id: str,
        external_task_id: str | None = None,
        allowed_states: Iterable[str] | None = None,
        failed_states: Iterable[str] | None = None,
        execution_delta: timedelta | None = None,
        execution_date_fn: Callable[..., datetime | list[datetime]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if execution_delta is not None and execution_date_fn is not None:
            raise DagDefinitionError(f"sensor {self.task_id!r}: give execution_delta or execution_date_fn, not both")
        self.external_dag_id = external_dag_id
        self.external_task_id = external_task_id
        self.allowed_states = [str(s) for s in (allowed_states or ["success"])]
        self.failed_states = [str(s) for s in (failed_states or [])]
        self.execution_delta = execution_delta
        self.execution_date_fn = execution_date_fn

    def logical_dates(self, context: Context) -> list[datetime]:
        logical_date: datetime = context["logical_date"]
        if self.execution_delta is not None:
            return [logical_date - self.execution_delta]
        if self.execution_date_fn is not None:
            fn = self.execution_date_fn
            found = fn(logical_date, **context_kwargs(fn, context, n_positional=1))
            dates = found if isinstance(found, list) else [found]
            return [d if d.tzinfo else d.replace(tzinfo=UTC) for d in dates]
        return [logical_date]

    def poke(self, context: Context) -> bool:
        dates = self.logical_dates(context)
        what = f"{self.external_dag_id}.{self.external_task_id}" if self.external_task_id else self.external_dag_id
        self.log.info("Poking for %s on %s", what, ", ".join(d.isoformat() for d in dates))
        states = self._states(dates)
        failed = [s for s in states if s in self.failed_states]
        if failed:
            message = f"{what} is {failed[0]} (one of failed_states {self.failed_states})"
            if self.soft_fail:
                raise SkipTask(message)
            raise FailTask(message)
        return len(states) >= len(dates) and all(s in self.allowed_states for s in states)

    def _states(self, dates: list[datetime]) -> list[str]:
        """Current states of the external task instances (or runs) on those logical dates."""
        from rabbitrun.data import access as runtime

        return runtime.current().external_states(self.external_dag_id, self.external_task_id, dates)
