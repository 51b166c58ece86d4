"""The date names of a task's context (``ds``, ``ts_nodash``, ``prev_ds``, ``tomorrow_ds``, ...), pure.

Airflow gives pendulum DateTimes in the context, so these are pendulum values too (a pendulum
DateTime is a ``datetime``: code written for either works). ``prev_*``/``next_*`` are Airflow's
deprecated schedule neighbours: for a manual run both are the run's own logical date (Airflow's
rule); for a scheduled run ``next`` is the end of its data interval and ``prev`` is one interval
length before its logical date (exact for fixed intervals and regular crons).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pendulum

__all__ = ["as_pendulum", "date_names"]


def as_pendulum(value: datetime) -> pendulum.DateTime:
    """``value`` as a pendulum DateTime in its own zone (naive values are taken as UTC)."""
    if isinstance(value, pendulum.DateTime):
        return value
    return pendulum.instance(value, tz="UTC")


def date_names(
    logical_date: pendulum.DateTime,
    interval_start: pendulum.DateTime,
    interval_end: pendulum.DateTime,
    *,
    manual: bool,
) -> dict[str, Any]:
    """Every date-derived name of Airflow 2.10's context, for one run."""
    if manual or interval_end <= interval_start:
        prev_date, next_date = logical_date, logical_date
    else:
        prev_date, next_date = logical_date - (interval_end - interval_start), interval_end
    ts = logical_date.isoformat()
    day = timedelta(days=1)
    return {
        "logical_date": logical_date,
        "execution_date": logical_date,  # deprecated in Airflow, still used by many DAGs
        "data_interval_start": interval_start,
        "data_interval_end": interval_end,
        "ds": _ds(logical_date),
        "ds_nodash": _nodash(logical_date),
        "ts": ts,
        "ts_nodash": logical_date.strftime("%Y%m%dT%H%M%S"),
        "ts_nodash_with_tz": ts.replace("-", "").replace(":", ""),
        "yesterday_ds": _ds(logical_date - day),
        "yesterday_ds_nodash": _nodash(logical_date - day),
        "tomorrow_ds": _ds(logical_date + day),
        "tomorrow_ds_nodash": _nodash(logical_date + day),
        "prev_execution_date": prev_date,
        "next_execution_date": next_date,
        "prev_ds": _ds(prev_date),
        "prev_ds_nodash": _nodash(prev_date),
        "next_ds": _ds(next_date),
        "next_ds_nodash": _nodash(next_date),
        # the previous *successful* run's dates need a DB query per attempt: not looked up (None)
        "prev_data_interval_start_success": None,
        "prev_data_interval_end_success": None,
        "prev_start_date_success": None,
        "prev_end_date_success": None,
        "prev_execution_date_success": None,
    }


def _ds(value: datetime) -> str:
    return value.strftime("%Y-%m-%d")


def _nodash(value: datetime) -> str:
    return value.strftime("%Y%m%d")
