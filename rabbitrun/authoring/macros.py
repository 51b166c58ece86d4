"""``{{ macros.* }}`` in templates and ``context["macros"]``: Airflow's macros module, name for name.

``macros.ds_add(ds, 5)``, ``macros.ds_format(ds, "%Y-%m-%d", "%d/%m")``, and the modules Airflow
exposes through it (``macros.datetime`` is the class, as in Airflow; ``macros.dateutil``,
``macros.time``, ``macros.uuid``, ``macros.random``, ``macros.json``). DAG files that call these
functions directly import them from here.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from datetime import date, datetime, timedelta
from typing import Any

import dateutil  # installed with pendulum
import dateutil.relativedelta
import pendulum

__all__ = [
    "datetime",
    "datetime_diff_for_humans",
    "dateutil",
    "ds_add",
    "ds_format",
    "json",
    "random",
    "time",
    "timedelta",
    "uuid",
]

_DS = "%Y-%m-%d"


def ds_add(ds: str, days: int) -> str:
    """``ds`` (YYYY-MM-DD) moved by ``days`` (negative goes back): ``ds_add("2015-01-06", -5)`` is
    ``"2015-01-01"``."""
    if not days:
        return str(ds)
    return (datetime.strptime(str(ds), _DS) + timedelta(days=days)).strftime(_DS)


def ds_format(ds: str, input_format: str, output_format: str) -> str:
    """Reformat a date string: ``ds_format("2015-01-05", "%Y-%m-%d", "%m-%d-%y")`` is ``"01-05-15"``."""
    return datetime.strptime(str(ds), input_format).strftime(output_format)


def datetime_diff_for_humans(dt: Any, since: Any = None) -> str:
    """How long ago (or ahead) ``dt`` is, in words, from ``since`` (default now): "2 hours ago"."""
    when = _pendulum(dt)
    other = None if since is None else _pendulum(since)
    return str(when.diff_for_humans(other))


def _pendulum(value: Any) -> pendulum.DateTime:
    if isinstance(value, pendulum.DateTime):
        return value
    if isinstance(value, datetime):
        return pendulum.instance(value)
    if isinstance(value, date):
        return pendulum.datetime(value.year, value.month, value.day)
    return pendulum.parse(str(value))  # type: ignore[return-value]
