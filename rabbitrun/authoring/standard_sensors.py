"""Airflow's standard sensors: PythonSensor, BashSensor and the time sensors.

Each is a :class:`BaseSensorOperator` with its own ``poke``: poke or reschedule mode, ``timeout``,
``soft_fail`` and ``exponential_backoff`` work as for every sensor. Times are compared in UTC.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

from rabbitrun.authoring.baseoperator import Context
from rabbitrun.authoring.operators import context_kwargs
from rabbitrun.authoring.sensors import BaseSensorOperator, PokeReturnValue
from rabbitrun.authoring.signals import FailTask
from rabbitrun.errors import DagDefinitionError

__all__ = ["BashSensor", "DateTimeSensor", "DayOfWeekSensor", "PythonSensor", "TimeDeltaSensor", "TimeSensor"]

_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class PythonSensor(BaseSensorOperator):
    """Done when ``python_callable(*op_args, **op_kwargs, **wanted context)`` returns truthy (or a
    done :class:`PokeReturnValue`, whose value becomes the XCom)."""

    template_fields = ("templates_dict", "op_args", "op_kwargs")

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Sequence[Any] = (),
        op_kwargs: Mapping[str, Any] | None = None,
        templates_dict: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not callable(python_callable):
            raise DagDefinitionError(f"sensor {self.task_id!r}: python_callable must be callable")
        self.python_callable = python_callable
        self.op_args: list[Any] = list(op_args)
        self.op_kwargs: dict[str, Any] = dict(op_kwargs or {})
        self.templates_dict = dict(templates_dict) if templates_dict is not None else None

    def poke(self, context: Context) -> bool | PokeReturnValue:
        if self.templates_dict is not None:
            context = {**context, "templates_dict": self.templates_dict}
        kwargs = context_kwargs(self.python_callable, context, len(self.op_args), self.op_kwargs)
        self.log.info("Poking callable: %s", getattr(self.python_callable, "__name__", self.python_callable))
        result = self.python_callable(*self.op_args, **kwargs)
        return result if isinstance(result, PokeReturnValue) else bool(result)


class BashSensor(BaseSensorOperator):
    """Done when ``bash -c bash_command`` exits 0. With ``retry_exit_code`` set, that code means "not
    yet" and any other non-zero code fails the task (Airflow's rule); without it, any non-zero is "not yet"."""

    template_fields = ("bash_command", "env")
    template_ext = (".sh", ".bash")

    def __init__(
        self,
        *,
        bash_command: str,
        env: Mapping[str, str] | None = None,
        output_encoding: str = "utf-8",
        retry_exit_code: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bash_command = bash_command
        self.env = dict(env) if env is not None else None
        self.output_encoding = output_encoding
        self.retry_exit_code = retry_exit_code

    def poke(self, context: Context) -> bool:
        self.log.info("Running command: %s", self.bash_command)
        done = subprocess.run(
            ["bash", "-c", self.bash_command],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=self.env,
            check=False,
            timeout=max(1.0, self.timeout_s),
        )
        for line in done.stdout.decode(self.output_encoding, errors="replace").splitlines():
            self.log.info("%s", line)
        self.log.info("Command exited with return code %s", done.returncode)
        if done.returncode == 0:
            return True
        if self.retry_exit_code is not None and done.returncode != self.retry_exit_code:
            raise FailTask(f"Command exited with return code {done.returncode}")
        return False


class TimeSensor(BaseSensorOperator):
    """Done once the time of day (UTC) is past ``target_time``."""

    def __init__(self, *, target_time: time, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(target_time, time):
            raise DagDefinitionError(f"sensor {self.task_id!r}: target_time must be a datetime.time")
        self.target_time = target_time

    def poke(self, context: Context) -> bool:
        self.log.info("Checking if the time (%s) has come", self.target_time)
        now = datetime.now(UTC)
        if self.target_time.tzinfo is None:
            return now.time() > self.target_time
        return now > datetime.combine(now.date(), self.target_time)


class TimeDeltaSensor(BaseSensorOperator):
    """Done once ``delta`` has passed after the run's data interval end."""

    def __init__(self, *, delta: timedelta, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delta = delta

    def poke(self, context: Context) -> bool:
        base = context.get("data_interval_end") or context.get("logical_date")
        if base is None:
            raise DagDefinitionError(f"sensor {self.task_id!r}: the run has no data interval end")
        target = base + self.delta
        self.log.info("Checking if the time (%s) has come", target)
        return bool(datetime.now(UTC) > target)


class DateTimeSensor(BaseSensorOperator):
    """Done once it is later than ``target_time`` (a datetime, or an ISO string: templated)."""

    template_fields = ("target_time",)

    def __init__(self, *, target_time: str | datetime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(target_time, datetime):
            self.target_time = target_time.isoformat()
        elif isinstance(target_time, str):
            self.target_time = target_time
        else:
            raise DagDefinitionError(f"sensor {self.task_id!r}: target_time must be a datetime or a str")

    def poke(self, context: Context) -> bool:
        target = datetime.fromisoformat(self.target_time)
        if target.tzinfo is None:
            target = target.replace(tzinfo=UTC)
        self.log.info("Checking if the time (%s) has come", target)
        return datetime.now(UTC) > target


class DayOfWeekSensor(BaseSensorOperator):
    """Done on the given day(s) of the week: names ("Monday"), WeekDay values or ISO numbers (1-7);
    the run's logical date's day with ``use_task_logical_date``, else today's (UTC)."""

    def __init__(self, *, week_day: Any, use_task_logical_date: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.week_day = week_day
        self.use_task_logical_date = use_task_logical_date
        self._days = week_day_numbers(week_day)

    def poke(self, context: Context) -> bool:
        when = context["logical_date"] if self.use_task_logical_date else datetime.now(UTC)
        self.log.info("Poking until weekday is in %s, Today is %s", self.week_day, _DAYS[when.isoweekday() - 1])
        return when.isoweekday() in self._days


def week_day_numbers(week_day: Any) -> set[int]:
    """ISO weekday numbers (Monday = 1) of a day name, number or WeekDay, or an iterable of them."""
    items: Iterable[Any] = [week_day] if isinstance(week_day, (str, int)) else week_day
    days: set[int] = set()
    for item in items:
        if isinstance(item, int) and 1 <= item <= 7:
            days.add(int(item))
        elif isinstance(item, str) and item.strip().lower() in _DAYS:
            days.add(_DAYS.index(item.strip().lower()) + 1)
        else:
            raise DagDefinitionError(f"unknown week day {item!r}: use a day name, WeekDay or 1-7 (Monday = 1)")
    return days
