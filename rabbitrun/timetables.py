"""When scheduled DAG runs are due: cron strings, presets, timedeltas and @once (pure functions).

A run covers a data interval [start, end) and is created once ``end`` has passed, with
``logical_date = start`` (Airflow's rule). Cron expressions are evaluated in the time zone of
the DAG's ``start_date`` (UTC when it is naive), so "0 1 * * *" stays at 01:00 local time
across daylight-saving changes; everything stored is UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter

from rabbitrun.errors import DagDefinitionError

PRESETS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *",
           "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
MAX_PER_PASS = 1000  # catchup of years of hourly runs proceeds in slices


@dataclass(frozen=True, slots=True)
class Interval:
    start: datetime
    end: datetime


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def validate(schedule: object) -> None:
    if schedule is None or schedule == "@once" or isinstance(schedule, timedelta):
        return
    if isinstance(schedule, str) and croniter.is_valid(PRESETS.get(schedule, schedule)):
        return
    raise DagDefinitionError(f"schedule {schedule!r} is not a cron expression, preset, timedelta, '@once' or None")


def intervals_after(schedule: str | timedelta, start_date: datetime, after: datetime | None,
                    until: datetime) -> list[Interval]:
    """Complete intervals that start at or after ``after`` (or ``start_date``) and end by ``until``."""
    start_date, until = _aware(start_date), _aware(until)
    cursor = _aware(after) if after is not None else start_date
    out: list[Interval] = []
    if isinstance(schedule, timedelta):
        steps = max(0, -(-int((cursor - start_date) / schedule)))  # first boundary >= cursor
        begin = start_date + steps * schedule
        while begin + schedule <= until and len(out) < MAX_PER_PASS:
            out.append(Interval(begin.astimezone(UTC), (begin + schedule).astimezone(UTC)))
            begin += schedule
        return out
    zone = start_date.tzinfo
    it = croniter(PRESETS.get(schedule, schedule), (cursor - timedelta(microseconds=1)).astimezone(zone))
    begin = it.get_next(datetime)
    while len(out) < MAX_PER_PASS:
        end = it.get_next(datetime)
        if end > until:
            break
        out.append(Interval(begin.astimezone(UTC), end.astimezone(UTC)))
        begin = end
    return out


def due(schedule: object, start_date: datetime | None, end_date: datetime | None, last_end: datetime | None,
        now: datetime, catchup: bool, has_runs: bool) -> list[Interval]:
    """The runs to create now for one DAG."""
    if schedule is None or start_date is None:
        return []
    if schedule == "@once":
        return [] if has_runs or _aware(start_date) > now else [Interval(_aware(start_date), _aware(start_date))]
    assert isinstance(schedule, str | timedelta)
    until = min(now, _aware(end_date)) if end_date else now
    if catchup:
        return intervals_after(schedule, start_date, last_end, until)
    latest = _latest(schedule, _aware(start_date), until)  # without catchup only the newest interval runs
    if latest is None or (last_end is not None and latest.start < _aware(last_end)):
        return []
    return [latest]


def _latest(schedule: str | timedelta, start_date: datetime, until: datetime) -> Interval | None:
    if isinstance(schedule, timedelta):
        steps = int((until - start_date) / schedule)
        if steps < 1:
            return None
        end = start_date + steps * schedule
        return Interval((end - schedule).astimezone(UTC), end.astimezone(UTC))
    it = croniter(PRESETS.get(schedule, schedule), until.astimezone(start_date.tzinfo))
    end = it.get_prev(datetime)
    begin = it.get_prev(datetime)
    if begin < start_date:
        return None
    return Interval(begin.astimezone(UTC), end.astimezone(UTC))
