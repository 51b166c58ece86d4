"""Run ONE attempt in the task process: context, templating, time limits, execute, record.

A worker's task process calls :func:`run_for_worker` (its worker claimed the attempt and records
its end; data goes over the task channel). ``rabbitrun tasks run`` calls
:func:`rabbitrun.runner.inprocess.run_attempt`, not exported here: it holds the DB, and a task
process imports this package without SQLAlchemy.
"""

from rabbitrun.runner.attempt import AttemptOutcome, run_for_worker
from rabbitrun.runner.link import WorkerLink

__all__ = ["AttemptOutcome", "WorkerLink", "run_for_worker"]
