"""When scheduled DAG runs are due: cron strings, presets, timedeltas and @once (pure functions).

A run covers a data interval [start, end) and is created once ``end`` has passed, with
``logical_date = start`` (Airflow's rule). Cron expressions are evaluated in the time zone of
the DAG's ``start_date`` (UTC when it is naive), so "0 1 * * *" stays at 01:00 local time
across daylight-saving changes; everything stored is UTC.

Daylight saving, as Airflow does it: a cron that fires at fixed hours is evaluated on the
local wall clock, so it fires once per wall-clock time. A time inside the hour repeated when
clocks go back is taken once, at its second occurrence; a time inside the hour skipped when
clocks go forward fires at the same distance after the change (02:30 -> 03:30). A cron that
fires every hour ("0 * * * *", "*/30 * * * *") follows absolute time instead, so the repeated
hour runs twice and the skipped one never.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from croniter import croniter

from rabbitrun.errors import DagDefinitionError

PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
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


def intervals_after(
    schedule: str | timedelta, start_date: datetime, after: datetime | None, until: datetime
) -> list[Interval]:
    """Complete intervals that start at or after ``after`` (or ``start_date``) and end by ``until``."""
    start_date, until = _aware(start_date), _aware(until)
    cursor = _aware(after) if after is not None else start_date
    out: list[Interval] = []
    if isinstance(schedule, timedelta):
        steps = max(0, int((cursor - start_date) / schedule))  # whole intervals before cursor
        begin = start_date + steps * schedule
        while begin + schedule <= until and len(out) < MAX_PER_PASS:
            out.append(Interval(begin.astimezone(UTC), (begin + schedule).astimezone(UTC)))
            begin += schedule
        return out
    assert start_date.tzinfo is not None
    fires = _fires_after(PRESETS.get(schedule, schedule), start_date.tzinfo, cursor - timedelta(microseconds=1))
    begin = next(fires)
    while len(out) < MAX_PER_PASS:
        end = next(fires)
        if end > until:
            break
        out.append(Interval(begin, end))
        begin = end
    return out


def due(
    schedule: object,
    start_date: datetime | None,
    end_date: datetime | None,
    last_end: datetime | None,
    now: datetime,
    catchup: bool,
    has_runs: bool,
) -> list[Interval]:
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
    assert start_date.tzinfo is not None
    fires = _fires_until(PRESETS.get(schedule, schedule), start_date.tzinfo, until)
    end = next(fires)
    begin = next(fires)
    if begin < start_date:
        return None
    return Interval(begin, end)


def _every_hour(expression: str) -> bool:
    """A cron whose hour field is '*' follows absolute time across DST changes (Airflow's rule)."""
    hours = croniter(expression).expanded[1]
    return hours == ["*"] or len(hours) == 24


def _fires_after(expression: str, zone: tzinfo, cursor: datetime) -> Iterator[datetime]:
    """Fire times strictly after ``cursor``, ascending, as aware UTC datetimes, each one once."""
    if _every_hour(expression):
        aware = croniter(expression, cursor.astimezone(zone))
        while True:
            yield aware.get_next(datetime).astimezone(UTC)
    wall = croniter(expression, cursor.astimezone(zone).replace(tzinfo=None))
    last = cursor
    while True:
        fire = _localize(wall.get_next(datetime), zone)
        if fire > last:  # a shifted time in a skipped hour can meet the next one: keep one
            last = fire
            yield fire


def _fires_until(expression: str, zone: tzinfo, until: datetime) -> Iterator[datetime]:
    """Fire times at or before ``until``, descending, as aware UTC datetimes, each one once."""
    if _every_hour(expression):
        aware = croniter(expression, until.astimezone(zone) + timedelta(microseconds=1))
        while True:
            yield aware.get_prev(datetime).astimezone(UTC)
    wall = croniter(expression, until.astimezone(zone).replace(tzinfo=None) + timedelta(microseconds=1))
    last = until + timedelta(microseconds=1)
    while True:
        fire = _localize(wall.get_prev(datetime), zone)
        if fire < last:
            last = fire
            yield fire


def _localize(wall: datetime, zone: tzinfo) -> datetime:
    """A naive local wall-clock time in UTC: a repeated time is its second occurrence, a skipped
    time moves forward by the size of the gap (pendulum's post-transition rule, which Airflow uses)."""
    later = wall.replace(tzinfo=zone, fold=1)
    if later.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return later.astimezone(UTC)
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)  # in a gap: fold=0 uses the offset before it
