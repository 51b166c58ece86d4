"""Run ONE attempt in the task process: context, templating, time limits, execute, record.

The worker's forked task child and ``rabbitrun tasks run`` both call :func:`run_attempt`.
"""

from rabbitrun.runner.attempt import AttemptOutcome, run_attempt

__all__ = ["AttemptOutcome", "run_attempt"]
