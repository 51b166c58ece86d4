"""Which scheduled runs are due: cron, presets, timedelta, @once, catchup, end_date and DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from rabbitrun import DAG
from rabbitrun.errors import DagDefinitionError
from rabbitrun.timetables import due, intervals_after

PARIS = ZoneInfo("Europe/Paris")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_daily_cron_in_local_time_keeps_its_hour_across_a_dst_change() -> None:
    start = datetime(2026, 3, 27, 0, 0, tzinfo=PARIS)  # DST starts on 2026-03-29 in Paris
    runs = intervals_after("0 1 * * *", start, None, utc(2026, 3, 31, 12))
    assert [r.start.astimezone(PARIS).hour for r in runs] == [1, 1, 1, 1]
    # clocks go forward at 02:00 on 2026-03-29: 01:00 local is 00:00 UTC before, 23:00 UTC after
    assert [r.start for r in runs] == [utc(2026, 3, 27, 0), utc(2026, 3, 28, 0), utc(2026, 3, 29, 0),
                                       utc(2026, 3, 29, 23)]
    assert runs[2].end - runs[2].start == timedelta(hours=23)  # the short day


def test_catchup_creates_every_missed_interval_and_without_it_only_the_latest() -> None:
    start, now = utc(2026, 1, 1), utc(2026, 1, 4, 5)
    every = due("@daily", start, None, None, now, catchup=True, has_runs=False)
    assert [r.start for r in every] == [utc(2026, 1, 1), utc(2026, 1, 2), utc(2026, 1, 3)]
    latest = due("@daily", start, None, None, now, catchup=False, has_runs=False)
    assert [(r.start, r.end) for r in latest] == [(utc(2026, 1, 3), utc(2026, 1, 4))]
    assert due("@daily", start, None, utc(2026, 1, 4), now, catchup=False, has_runs=True) == []
    assert due("@daily", start, None, utc(2026, 1, 3), now, catchup=True, has_runs=True)[0].start == utc(2026, 1, 3)


def test_timedelta_once_end_date_and_none() -> None:
    runs = due(timedelta(hours=6), utc(2026, 1, 1), None, None, utc(2026, 1, 2, 1), catchup=True, has_runs=False)
    assert [r.start.hour for r in runs] == [0, 6, 12, 18]
    assert due(timedelta(hours=6), utc(2026, 1, 1), utc(2026, 1, 1, 13), None, utc(2026, 1, 5), True, False)[-1].end \
        == utc(2026, 1, 1, 12)
    once = due("@once", utc(2026, 1, 1), None, None, utc(2026, 1, 2), catchup=False, has_runs=False)
    assert [r.start for r in once] == [utc(2026, 1, 1)]
    assert due("@once", utc(2026, 1, 1), None, None, utc(2026, 1, 2), False, has_runs=True) == []
    assert due(None, utc(2026, 1, 1), None, None, utc(2026, 1, 2), True, False) == []
    hourly = due("@hourly", datetime(2026, 1, 1), None, None, utc(2026, 1, 1, 3, 30), True, False)  # naive = UTC
    assert len(hourly) == 3


def test_a_bad_schedule_is_a_definition_error() -> None:
    with pytest.raises(DagDefinitionError, match="not a cron expression"):
        DAG("bad", schedule="every tuesday")
