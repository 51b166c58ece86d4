"""The ``*Async`` sensors of Airflow, until rabbitrun has a triggerer: the same sensor in reschedule mode.

Airflow's ``TimeDeltaSensorAsync``, ``TimeSensorAsync`` and ``DateTimeSensorAsync`` defer to the
triggerer so they hold no worker slot while they wait. Reschedule mode frees the slot between
pokes too, so a DAG written for them behaves the same here apart from the poke interval (the
sensor wakes every ``poke_interval`` instead of exactly at the target). BaseSensorOperator warns
once that ``deferrable=True`` falls back this way.
"""

from __future__ import annotations

from typing import Any

from rabbitrun.authoring.standard_sensors import DateTimeSensor, TimeDeltaSensor, TimeSensor

__all__ = ["DateTimeSensorAsync", "TimeDeltaSensorAsync", "TimeSensorAsync"]


class TimeDeltaSensorAsync(TimeDeltaSensor):
    """Airflow's deferrable TimeDeltaSensor; here a TimeDeltaSensor in reschedule mode."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("end_from_trigger", None)  # an argument of the trigger, which does not exist here
        super().__init__(**{**kwargs, "deferrable": True})


class TimeSensorAsync(TimeSensor):
    """Airflow's deferrable TimeSensor; here a TimeSensor in reschedule mode."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("end_from_trigger", None)
        super().__init__(**{**kwargs, "deferrable": True})


class DateTimeSensorAsync(DateTimeSensor):
    """Airflow's deferrable DateTimeSensor; here a DateTimeSensor in reschedule mode."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("end_from_trigger", None)
        super().__init__(**{**kwargs, "deferrable": True})
