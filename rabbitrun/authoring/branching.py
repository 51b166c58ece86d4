"""Branching operators: BranchPythonOperator, BaseBranchOperator, the date/time and weekday branches,
ShortCircuitOperator and LatestOnlyOperator, with Airflow's names, arguments and behaviour.

Each skips tasks through :mod:`rabbitrun.authoring.skipping` (the worker records the skips with the
task's success); the branch's choice is its return value, pushed as XCom as in Airflow.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any

from rabbitrun.authoring import timetables
from rabbitrun.authoring.baseoperator import BaseOperator, Context
from rabbitrun.authoring.operators import PythonOperator
from rabbitrun.authoring.skipping import BranchMixIn, ShortCircuitMixIn
from rabbitrun.authoring.weekday import WeekDay
from rabbitrun.errors import DagDefinitionError

__all__ = [
    "BaseBranchOperator",
    "BranchDateTimeOperator",
    "BranchDayOfWeekOperator",
    "BranchPythonOperator",
    "LatestOnlyOperator",
    "ShortCircuitOperator",
]

BranchChoice = str | Iterable[str] | None


class BaseBranchOperator(BaseOperator, BranchMixIn):
    """Subclasses implement ``choose_branch(context)``: the task id(s) to follow, None to skip all."""

    def choose_branch(self, context: Context) -> BranchChoice:
        raise NotImplementedError(f"{type(self).__name__} must implement choose_branch(self, context)")

    def execute(self, context: Context) -> Any:
        return self.do_branch(context, self.choose_branch(context))


class BranchPythonOperator(PythonOperator, BranchMixIn):
    """``python_callable`` returns the task id(s) to follow; the other direct downstream tasks are skipped."""

    def execute(self, context: Context) -> Any:
        return self.do_branch(context, super().execute(context))


class ShortCircuitOperator(PythonOperator, ShortCircuitMixIn):
    """``python_callable``'s result is a condition: falsy skips downstream (all of it by default; only
    the direct tasks with ``ignore_downstream_trigger_rules=False``, their trigger rules do the rest)."""

    def __init__(self, *args: Any, ignore_downstream_trigger_rules: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ignore_downstream_trigger_rules = bool(ignore_downstream_trigger_rules)

    def execute(self, context: Context) -> Any:
        return self.short_circuit(context, super().execute(context))


def _now(context: Context, use_logical_date: bool) -> datetime:
    if use_logical_date:
        when: datetime = context["logical_date"]
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return datetime.now(UTC)


def _zone(task: BaseOperator) -> tzinfo:
    """The DAG's time zone (its start_date's), in which naive target times are read."""
    start = getattr(task.dag, "start_date", None)
    return start.tzinfo if isinstance(start, datetime) and start.tzinfo else UTC


def _targets(
    now: datetime, lower: datetime | time | None, upper: datetime | time | None, zone: tzinfo
) -> tuple[datetime | None, datetime | None]:
    """Airflow's ``target_times_as_dates``: times are taken on ``now``'s day, an upper time before
    the lower one on the next day; naive values are in the DAG's time zone."""

    def on_day(value: datetime | time | None) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, time):
            value = datetime.combine(now.astimezone(zone).date(), value)
        return value if value.tzinfo else value.replace(tzinfo=zone)

    low, up = on_day(lower), on_day(upper)
    if isinstance(lower, time) and isinstance(upper, time) and low is not None and up is not None and up < low:
        up += timedelta(days=1)
    return low, up


class BranchDateTimeOperator(BaseBranchOperator):
    """Follow ``follow_task_ids_if_true`` when now (or the run's logical date) is within
    [target_lower, target_upper], else ``follow_task_ids_if_false``; either bound may be None."""

    def __init__(
        self,
        *,
        follow_task_ids_if_true: str | Iterable[str],
        follow_task_ids_if_false: str | Iterable[str],
        target_lower: datetime | time | None = None,
        target_upper: datetime | time | None = None,
        use_task_logical_date: bool = False,
        use_task_execution_date: bool = False,  # Airflow 2's name
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if target_lower is None and target_upper is None:
            raise DagDefinitionError(
                "Both target_upper and target_lower are None. At least one must be defined "
                "to be compared to the current datetime"
            )
        self.target_lower, self.target_upper = target_lower, target_upper
        self.follow_task_ids_if_true = follow_task_ids_if_true
        self.follow_task_ids_if_false = follow_task_ids_if_false
        self.use_task_logical_date = bool(use_task_logical_date or use_task_execution_date)

    def choose_branch(self, context: Context) -> BranchChoice:
        now = _now(context, self.use_task_logical_date)
        lower, upper = _targets(now, self.target_lower, self.target_upper, _zone(self))
        if (upper is not None and upper < now) or (lower is not None and lower > now):
            return self.follow_task_ids_if_false
        return self.follow_task_ids_if_true


class BranchDayOfWeekOperator(BaseBranchOperator):
    """Follow ``follow_task_ids_if_true`` on the ``week_day`` (a name, a WeekDay or several), else
    ``follow_task_ids_if_false``; today in UTC, or the run's logical date's day."""

    def __init__(
        self,
        *,
        follow_task_ids_if_true: str | Iterable[str],
        follow_task_ids_if_false: str | Iterable[str],
        week_day: str | WeekDay | Iterable[str] | Iterable[WeekDay],
        use_task_logical_date: bool = False,
        use_task_execution_day: bool = False,  # Airflow 2's name
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.follow_task_ids_if_true = follow_task_ids_if_true
        self.follow_task_ids_if_false = follow_task_ids_if_false
        self.week_day = week_day
        try:
            self._week_day_num = WeekDay.validate_week_day(week_day)
        except (AttributeError, TypeError) as exc:
            raise DagDefinitionError(f"task {self.task_id!r}: {exc}") from None
        self.use_task_logical_date = bool(use_task_logical_date or use_task_execution_day)

    def choose_branch(self, context: Context) -> BranchChoice:
        now = _now(context, self.use_task_logical_date)
        if now.isoweekday() in self._week_day_num:
            return self.follow_task_ids_if_true
        return self.follow_task_ids_if_false


class LatestOnlyOperator(BaseBranchOperator):
    """Skip the downstream tasks unless this run covers the latest complete interval of the DAG's
    schedule (now falls in the interval after it). Manual runs and unscheduled DAGs proceed."""

    def choose_branch(self, context: Context) -> BranchChoice:
        run = context["dag_run"]
        dag = context["dag"]
        everything = sorted(self.downstream_task_ids)
        schedule = getattr(dag, "schedule", None)
        end = getattr(run, "data_interval_end", None)
        if getattr(run, "run_type", "manual") == "manual" or end is None:
            self.log.info("Manually triggered DAG run: allowing execution to proceed.")
            return everything
        if not isinstance(schedule, (str, timedelta)) or schedule == "@once" or dag.start_date is None:
            self.log.info("No next interval for this schedule: allowing execution to proceed.")
            return everything
        now = datetime.now(UTC)
        end = end if end.tzinfo else end.replace(tzinfo=UTC)
        later = timetables.intervals_after(schedule, dag.start_date, end, now)
        if now <= end or later:
            self.log.info("Not latest execution, skipping downstream.")
            return None
        self.log.info("Latest, allowing execution to proceed.")
        return everything
