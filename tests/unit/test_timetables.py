"""Which scheduled runs are due: cron, presets, timedelta, @once, catchup, end_date and DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from rabbitrun import DAG
from rabbitrun.authoring.timetables import due, intervals_after
from rabbitrun.errors import DagDefinitionError

PARIS = ZoneInfo("Europe/Paris")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_daily_cron_in_local_time_keeps_its_hour_across_a_dst_change() -> None:
    start = datetime(2026, 3, 27, 0, 0, tzinfo=PARIS)  # DST starts on 2026-03-29 in Paris
    runs = intervals_after("0 1 * * *", start, None, utc(2026, 3, 31, 12))
    assert [r.start.astimezone(PARIS).hour for r in runs] == [1, 1, 1, 1]
    # clocks go forward at 02:00 on 2026-03-29: 01:00 local is 00:00 UTC before, 23:00 UTC after
    assert [r.start for r in runs] == [
        utc(2026, 3, 27, 0),
        utc(2026, 3, 28, 0),
        utc(2026, 3, 29, 0),
        utc(2026, 3, 29, 23),
    ]
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
    assert due(timedelta(hours=6), utc(2026, 1, 1), utc(2026, 1, 1, 13), None, utc(2026, 1, 5), True, False)[
        -1
    ].end == utc(2026, 1, 1, 12)
    once = due("@once", utc(2026, 1, 1), None, None, utc(2026, 1, 2), catchup=False, has_runs=False)
    assert [r.start for r in once] == [utc(2026, 1, 1)]
    assert due("@once", utc(2026, 1, 1), None, None, utc(2026, 1, 2), False, has_runs=True) == []
    assert due(None, utc(2026, 1, 1), None, None, utc(2026, 1, 2), True, False) == []
    hourly = due("@hourly", datetime(2026, 1, 1), None, None, utc(2026, 1, 1, 3, 30), True, False)  # naive = UTC
    assert len(hourly) == 3


def test_a_bad_schedule_is_a_definition_error() -> None:
    with pytest.raises(DagDefinitionError, match="not a cron expression"):
        DAG("bad", schedule="every tuesday")


def test_catchup_across_fall_back_creates_one_run_for_a_time_in_the_repeated_hour() -> None:
    # 2026-10-25 in Paris: 03:00 CEST becomes 02:00 CET, so 02:30 happens twice; Airflow runs once
    start = datetime(2026, 10, 23, 0, 0, tzinfo=PARIS)
    runs = due("30 2 * * *", start, None, None, utc(2026, 10, 28), catchup=True, has_runs=False)
    local = [r.start.astimezone(PARIS) for r in runs]
    assert [(d.day, d.hour, d.minute) for d in local] == [(23, 2, 30), (24, 2, 30), (25, 2, 30), (26, 2, 30)]
    assert runs[2].start == utc(2026, 10, 25, 1, 30)  # the second 02:30 (CET), pendulum's post-transition
    assert runs[1].end == runs[2].start and runs[1].end - runs[1].start == timedelta(hours=25)
    assert all(a.end == b.start for a, b in zip(runs, runs[1:]))  # contiguous, no overlap


def test_catchup_resumed_inside_the_repeated_hour_does_not_create_it_again() -> None:
    start = datetime(2026, 10, 20, 0, 0, tzinfo=PARIS)
    first = due("30 2 * * *", start, None, None, utc(2026, 10, 25, 1, 45), catchup=True, has_runs=False)
    assert first[-1].end == utc(2026, 10, 25, 1, 30)
    again = due("30 2 * * *", start, None, first[-1].end, utc(2026, 10, 27), catchup=True, has_runs=True)
    assert [r.start for r in again] == [utc(2026, 10, 25, 1, 30)]  # the 25th's run, once
    assert due("30 2 * * *", start, None, first[-1].end, utc(2026, 10, 25, 23), catchup=False, has_runs=True) == []


def test_spring_forward_moves_a_skipped_time_past_the_gap_and_runs_it_once() -> None:
    # 2026-03-29 in Paris: 02:00 CET becomes 03:00 CEST, so 02:30 does not exist that day
    start = datetime(2026, 3, 27, 0, 0, tzinfo=PARIS)
    runs = due("30 2 * * *", start, None, None, utc(2026, 4, 1), catchup=True, has_runs=False)
    local = [r.start.astimezone(PARIS) for r in runs]
    assert [(d.day, d.hour, d.minute) for d in local] == [(27, 2, 30), (28, 2, 30), (29, 3, 30), (30, 2, 30)]
    assert runs[2].start == utc(2026, 3, 29, 1, 30)
    two_times = due("15 2,3 * * *", start, None, None, utc(2026, 3, 31), catchup=True, has_runs=False)
    on_the_29th = [
        r.start.astimezone(PARIS).strftime("%H:%M") for r in two_times if r.start.astimezone(PARIS).day == 29
    ]
    assert on_the_29th == ["03:15"]  # 02:15 moved to 03:15 meets the real 03:15: one run


def test_hourly_cron_follows_absolute_time_across_both_changes() -> None:
    fall = due(
        "0 * * * *",
        datetime(2026, 10, 25, 0, 0, tzinfo=PARIS),
        None,
        None,
        datetime(2026, 10, 26, 0, 0, tzinfo=PARIS),
        catchup=True,
        has_runs=False,
    )
    assert len(fall) == 25 and all(r.end - r.start == timedelta(hours=1) for r in fall)
    assert [r.start.astimezone(PARIS).hour for r in fall].count(2) == 2  # both 02:00s run
    spring = due(
        "*/30 * * * *",
        datetime(2026, 3, 29, 0, 0, tzinfo=PARIS),
        None,
        None,
        datetime(2026, 3, 30, 0, 0, tzinfo=PARIS),
        catchup=True,
        has_runs=False,
    )
    assert len(spring) == 46 and 2 not in {r.start.astimezone(PARIS).hour for r in spring}


def test_without_catchup_the_latest_interval_at_fall_back_is_the_25_hour_day() -> None:
    start = datetime(2026, 10, 1, 0, 0, tzinfo=PARIS)
    # at 02:45 CEST (first pass through the repeated hour) the day's 02:30 has not happened yet
    before = due("30 2 * * *", start, None, None, utc(2026, 10, 25, 0, 45), catchup=False, has_runs=False)
    assert [(r.start, r.end) for r in before] == [(utc(2026, 10, 23, 0, 30), utc(2026, 10, 24, 0, 30))]
    after = due("30 2 * * *", start, None, None, utc(2026, 10, 25, 1, 45), catchup=False, has_runs=False)
    assert [(r.start, r.end) for r in after] == [(utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 1, 30))]
