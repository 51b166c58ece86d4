"""``rabbitrun tasks run``: one process plays the worker's part (claim, the DB's own data access,
the record of the end) and runs the attempt itself.

Apart from :mod:`rabbitrun.runner.attempt` because it holds the DB: a worker's task process imports
the runner without SQLAlchemy (DESIGN "Task process boundary"), this module is for the CLI and the
in-process scheduler only.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from rabbitrun.authoring import DagBag, may_skip
from rabbitrun.data import access as runtime
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models import attempts
from rabbitrun.models.base import utcnow
from rabbitrun.models.engine import retrying
from rabbitrun.models.outcomes import refused_skips
from rabbitrun.protocol import ClaimedAttempt
from rabbitrun.runner.attempt import AttemptOutcome, failed_to_store, run_claimed, stored_value
from rabbitrun.secrets import SecretsMasker
from rabbitrun.settings import Settings
from rabbitrun.states import OutcomeKind, TaskState

# outcomes whose record is the state change and the attempt row only (no XCom, no reschedule row)
_STATE_ONLY = frozenset({TaskState.SUCCESS, TaskState.FAILED, TaskState.UP_FOR_RETRY, TaskState.SKIPPED})


def run_attempt(
    settings: Settings,
    sessions: sessionmaker[Session],
    dagbag: DagBag,
    key: TaskInstanceKey,
    *,
    hostname: str,
    in_process: bool,
    clock_start: float | None = None,
) -> AttemptOutcome:
    """``rabbitrun tasks run``: play the worker's part in this process, then run the attempt here.

    Claim ``key`` (QUEUED -> RUNNING), run it with the DB's own data access and record its end; a
    worker does the claim and the record itself, and its task process runs :func:`run_claimed`.
    ``clock_start``: when timing started (monotonic); defaults to now.
    """
    clock_start = time.monotonic() if clock_start is None else clock_start
    claimed_at = utcnow()  # start_date: duration = end_date - start_date, as in Airflow
    owner = f"local-{uuid.uuid4().hex}"  # the fencing token of this claim, as a worker's delivery id is
    try:
        for attempt in retrying(settings.database):
            with attempt, attempts.attempt_db(sessions) as db:
                claim = attempts.claim(db, key, hostname=hostname, pid=os.getpid(), now=claimed_at, envelope_id=owner)
    except DBAPIError as exc:  # the DB is down at task start: say so at once, never hang
        reason = f"metadata database unavailable at task start: {str(exc.orig or exc).strip().splitlines()[0]}"
        return AttemptOutcome(key, OutcomeKind.DB_UNAVAILABLE, False, None, None, reason)
    if not claim.won:
        state = OutcomeKind.UNKNOWN if claim.state is None else OutcomeKind.NOT_CLAIMED
        why = "no such task instance" if claim.state is None else f"attempt is {claim.state} (try {claim.try_number})"
        return AttemptOutcome(key, state, False, None, None, why)
    assert claim.run is not None
    claimed = ClaimedAttempt(claim.max_tries, claim.queue, claimed_at, vars(claim.run))
    masker = SecretsMasker()
    access = runtime.build(settings, sessions, masker)

    def record(finish: attempts.Finish, error: str, value: Any) -> tuple[attempts.Finish, str, bool]:
        if finish.skip:  # the worker's check, made here from the DAG: only downstream tasks are skipped
            refused = refused_skips(
                key.task_id, finish.skip, may_skip(dagbag.get_dag(key.dag_id).get_task(key.task_id))
            )
            if refused is not None:
                finish, error = attempts.Finish(TaskState.FAILED, finish.ended_at, refused), refused  # value dropped
        finish, error, row = stored_value(access, key, finish, error, value)
        end = attempts.EndRecord(key, finish, claimed_at, row, owner, hostname)
        for attempt in retrying(settings.database):  # the record is conditional on RUNNING: safe to repeat
            if row is None and finish.state in _STATE_ONLY and not finish.skip:  # most attempts: no ORM write to make
                with attempt, attempts.attempt_db(sessions) as db:
                    stands = attempts.finish(db, key, finish, started_at=claimed_at, envelope_id=owner)
                    return finish, error, stands
            with attempt, sessions() as session:
                ((recorded, stands),) = attempts.record_ends(session, [end], max_xcom_bytes=settings.core.max_xcom_size)
        return (*failed_to_store(recorded, finish, error), stands)

    return run_claimed(settings, access, masker, dagbag, key, claimed, record, hostname, in_process, clock_start)
