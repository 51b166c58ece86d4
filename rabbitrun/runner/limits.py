"""Time limits inside the task process: SIGTERM at the soft limit becomes TaskTimeout.

The worker sends SIGTERM at the soft limit (or an alarm armed here does, for in-process
runs); one before the limit is a shutdown and becomes :class:`Terminated`.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from rabbitrun.authoring.signals import TaskTimeout


class Terminated(BaseException):
    """SIGTERM before the time limit: the worker is shutting down. BaseException so
    that a task's ``except Exception`` cannot swallow it."""


@contextmanager
def time_limit(timeout_s: float | None, *, arm_alarm: bool, started: float) -> Iterator[None]:
    """Install the SIGTERM handler (and, in-process, an alarm at the soft limit).

    ``started`` is the monotonic time the worker's clock for this attempt began
    (the fork): a SIGTERM at or after ``started + timeout_s`` is the soft
    limit; an earlier one is a shutdown.
    """

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        elapsed = time.monotonic() - started
        if timeout_s is not None and (signum == signal.SIGALRM or elapsed >= timeout_s - 0.05):
            raise TaskTimeout(f"Timeout after {elapsed:.1f}s (execution_timeout={timeout_s:g}s), PID: {os.getpid()}")
        raise Terminated(f"received signal {signal.Signals(signum).name}")

    old_term = signal.signal(signal.SIGTERM, on_signal)
    old_alarm = signal.signal(signal.SIGALRM, on_signal)
    if arm_alarm and timeout_s:
        signal.setitimer(signal.ITIMER_REAL, max(0.001, started + timeout_s - time.monotonic()))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGALRM, old_alarm)
