"""WeekDay: the days of the week as Airflow's ``airflow.utils.weekday.WeekDay`` names them (ISO numbers)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

__all__ = ["WeekDay"]


class WeekDay(IntEnum):
    """Monday is 1 and Sunday 7, as ``datetime.isoweekday()`` counts."""

    MONDAY = 1
    TUESDAY = 2
    WEDNESDAY = 3
    THURSDAY = 4
    FRIDAY = 5
    SATURDAY = 6
    SUNDAY = 7

    @classmethod
    def get_weekday_number(cls, week_day_str: str) -> int:
        """``"Monday"`` (any case) -> 1; an unknown name raises AttributeError, as in Airflow."""
        sanitized = week_day_str.upper()
        if sanitized not in cls.__members__:
            raise AttributeError(f'Invalid Week Day passed: "{week_day_str}"')
        return cls[sanitized].value

    @classmethod
    def convert(cls, day: str | WeekDay) -> int:
        """A day name or a WeekDay -> its ISO number."""
        if isinstance(day, WeekDay):
            return day.value
        return cls.get_weekday_number(day)

    @classmethod
    def validate_week_day(cls, week_day: str | WeekDay | Iterable[str] | Iterable[WeekDay]) -> set[int]:
        """One day or several -> their ISO numbers; anything else raises TypeError naming it."""
        if isinstance(week_day, (str, WeekDay)):
            return {cls.convert(week_day)}
        if isinstance(week_day, Iterable):
            days: list[object] = list(week_day)
            named = [day for day in days if isinstance(day, (str, WeekDay))]
            if len(named) == len(days):
                return {cls.convert(day) for day in named}
        raise TypeError(
            f"Unsupported Type for week_day parameter: {type(week_day).__name__}. "
            "Input should be iterable type: str, set, list, dict or Weekday enum type"
        )
