"""Sensors: tasks that wait for something by calling ``poke`` until it says yes, as in Airflow.

``mode="poke"`` keeps the worker slot and sleeps between pokes in the task
process. ``mode="reschedule"`` ends the attempt after each unsuccessful poke as
UP_FOR_RESCHEDULE (same try), which frees the worker slot; the scheduler sends
it again through the broker when the next poke is due. Either way ``timeout``
counts from the first poke of the try, across reschedules, and ends the wait as
FAILED without retries, or SKIPPED with ``soft_fail``.

Only I/O: FileSensor looks at the file system when it pokes.
"""

from __future__ import annotations

import glob
import os
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from rabbitrun.authoring.baseoperator import BaseOperator, Context
from rabbitrun.authoring.signals import RescheduleTask, SensorTimeout, SkipTask
from rabbitrun.errors import DagDefinitionError

__all__ = ["BaseSensorOperator", "FileSensor", "PokeReturnValue"]

MODES = ("poke", "reschedule")


@dataclass(frozen=True, slots=True)
class PokeReturnValue:
    """What ``poke`` may return instead of a bool: done or not, and the XCom value once done."""

    is_done: bool
    xcom_value: Any = None


class _RescheduleHistory(Protocol):
    first_started_at: datetime | None
    reschedules: int


class _ReschedulingTaskInstance(Protocol):
    """What a sensor in reschedule mode asks of ``context["ti"]`` (the runner provides it)."""

    def reschedule_history(self) -> _RescheduleHistory: ...


def _warn_deferrable_once() -> None:
    """Python's default warning filter shows this once per place in a DAG file, not per task."""
    warnings.warn(
        "deferrable=True sensors run in mode='reschedule' until rabbitrun has a triggerer",
        UserWarning,
        stacklevel=4,
    )


def _seconds(name: str, value: timedelta | float | int | None) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise DagDefinitionError(f"{name} must be a timedelta or a number of seconds >= 0, got {value!r}")
    return float(value)


class BaseSensorOperator(BaseOperator):
    """Wait until :meth:`poke` returns True (or a done :class:`PokeReturnValue`).

    ``poke_interval`` and ``timeout`` take seconds or timedeltas (Airflow's
    defaults: 60 s and 7 days). With ``exponential_backoff`` the n-th wait is
    ``poke_interval * 2**(n-1)``, capped by ``max_wait`` and by the time left
    before ``timeout``; there is no random jitter, so waits are predictable.
    """

    def __init__(
        self,
        *,
        poke_interval: timedelta | float = 60,
        timeout: timedelta | float = timedelta(days=7),
        soft_fail: bool = False,
        mode: str = "poke",
        exponential_backoff: bool = False,
        max_wait: timedelta | float | None = None,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if deferrable:  # no triggerer yet: reschedule mode frees the worker slot the same way
            _warn_deferrable_once()
            mode = "reschedule"
        self.deferrable = False
        if mode not in MODES:
            raise DagDefinitionError(f"sensor {self.task_id!r}: mode must be one of {MODES}, got {mode!r}")
        self.poke_interval_s = _seconds("poke_interval", poke_interval)
        self.timeout_s = _seconds("timeout", timeout)
        self.max_wait_s = None if max_wait is None else _seconds("max_wait", max_wait)
        self.soft_fail = bool(soft_fail)
        self.mode = mode
        self.exponential_backoff = bool(exponential_backoff)

    @property
    def reschedule(self) -> bool:
        return self.mode == "reschedule"

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Check once whether the condition is met; no waiting here."""
        raise NotImplementedError(f"{type(self).__name__} must implement poke(self, context)")

    def execute(self, context: Context) -> Any:
        started_at, pokes = self._wait_began(context)
        while True:
            pokes += 1
            result = self.poke(context)
            done, value = (
                (result.is_done, result.xcom_value) if isinstance(result, PokeReturnValue) else (bool(result), None)
            )
            if done:
                self.log.info("Success criteria met after %d poke(s). Exiting.", pokes)
                return value
            now = datetime.now(UTC)
            waited_s = (now - started_at).total_seconds()
            if waited_s > self.timeout_s:
                message = (
                    f"Sensor has timed out; run duration of {waited_s:.1f} seconds exceeds the "
                    f"specified timeout of {self.timeout_s:g}."
                )
                if self.soft_fail:
                    raise SkipTask(message)
                raise SensorTimeout(message)
            wait_s = self.next_poke_interval_s(pokes, waited_s)
            if self.reschedule:  # ends this attempt as up_for_reschedule: the worker slot is freed
                raise RescheduleTask(now + timedelta(seconds=wait_s))
            self.log.info("Poke %d: criteria not met; poking again in %.1fs", pokes, wait_s)
            time.sleep(wait_s)

    def next_poke_interval_s(self, pokes: int, waited_s: float) -> float:
        """Seconds to wait after the ``pokes``-th unsuccessful poke (pure)."""
        if not self.exponential_backoff:
            return self.poke_interval_s
        wait_s = self.poke_interval_s * 2.0 ** min(pokes - 1, 62)
        if self.max_wait_s is not None:
            wait_s = min(wait_s, self.max_wait_s)
        return max(0.0, min(wait_s, self.timeout_s - waited_s))

    def _wait_began(self, context: Context) -> tuple[datetime, int]:
        """When this try's wait began and how many pokes it made: across reschedules, from the DB."""
        now = datetime.now(UTC)
        ti: _ReschedulingTaskInstance | None = context.get("ti")
        if not self.reschedule or ti is None or not hasattr(ti, "reschedule_history"):
            return now, 0
        history = ti.reschedule_history()
        return history.first_started_at or now, history.reschedules


class FileSensor(BaseSensorOperator):
    """Wait for a file or a non-empty directory; ``filepath`` may be a glob and is templated."""

    template_fields = ("filepath",)

    def __init__(self, *, filepath: str, recursive: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filepath = filepath
        self.recursive = recursive

    def poke(self, context: Context) -> bool:
        self.log.info("Poking for file %s", self.filepath)
        for path in glob.glob(os.fspath(self.filepath), recursive=self.recursive):
            if os.path.isfile(path):
                self.log.info("Found file %s", path)
                return True
            for _, _, files in os.walk(path):
                if files:
                    self.log.info("Found a file in directory %s", path)
                    return True
        return False
