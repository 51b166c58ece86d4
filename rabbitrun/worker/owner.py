"""The worker owns each attempt it runs: it claims it, serves its task process, records its end.

DESIGN.md, "Task process boundary": the task process holds no DB URL, no Fernet key and no broker
credentials. The worker claims the attempt before it hands the delivery to a task process (the claim
rides in the run frame), answers the task's data requests on its task channel with the metadata DB's
own access (decrypting Variables and Connections here), and records the end the task reports.

Claims and ends go through :class:`~rabbitrun.worker.batches.Batcher`: deliveries that arrive
together are claimed in one transaction, ends reported together are recorded in one (group commit).
Every write is a compare-and-set that names the delivery (the fencing token, ``envelope_id``): a
worker that lost its lease cannot end the attempt another worker runs now.

A task reads what its attempt may read: XComs and mapped instances of its own DAG run, its own
reschedule history; it writes XComs as itself only. ExternalTaskSensor's state reads may name any
DAG (states only, no data).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from rabbitrun import protocol
from rabbitrun.data.access import DbAccess
from rabbitrun.errors import AccessDenied, ConnectionNotFound, ProtocolError, RabbitrunError, VariableNotFound
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models import attempts, outcomes
from rabbitrun.models.base import utcnow
from rabbitrun.models.engine import retrying
from rabbitrun.protocol import DataOp
from rabbitrun.protocol.codec import dt, ts
from rabbitrun.settings import Settings
from rabbitrun.states import OutcomeKind, TaskState
from rabbitrun.worker.batches import Batcher

log = logging.getLogger("rabbitrun.worker")


@dataclass(frozen=True, slots=True)
class Lost:
    """A claim this worker did not win: why, as the outcome its delivery is settled by."""

    outcome: protocol.OutcomeFrame


class AttemptOwner:
    """Worker-wide: batched claims and ends, and one :class:`AttemptService` per running attempt."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], hostname: str) -> None:
        self._settings, self._sessions, self.hostname = settings, sessions, hostname
        self.claims: Batcher[tuple[TaskInstanceKey, str, str], attempts.Claim] = Batcher(self._claim_batch)
        self.ends: Batcher[attempts.EndRecord, tuple[attempts.Finish, bool]] = Batcher(self._end_batch)

    async def claim(self, envelope: protocol.TaskEnvelope) -> protocol.ClaimedAttempt | Lost:
        """QUEUED -> RUNNING for the envelope's try, in a batch with the claims arriving with it."""
        now = utcnow()  # start_date: the claim is when the attempt starts, as a task process claimed it
        try:
            claim = await self.claims.submit((envelope.key, envelope.id, envelope.queue))
        except DBAPIError as exc:  # the DB is down at task start: the delivery goes back, nothing started
            reason = f"metadata database unavailable at task start: {str(exc.orig or exc).strip().splitlines()[0]}"
            return Lost(protocol.OutcomeFrame("", OutcomeKind.DB_UNAVAILABLE, error=reason))
        if not claim.won:
            if claim.state is None:
                key = envelope.key
                what = f"{key.dag_id}.{key.task_id} in run {key.run_id!r}"
                return Lost(protocol.OutcomeFrame("", OutcomeKind.UNKNOWN, error=what))
            why = f"attempt is {claim.state} (try {claim.try_number})"
            if claim.state == TaskState.QUEUED.value and claim.try_number == envelope.key.try_number:
                why += f"; the envelope's queue {envelope.queue!r} is not the task's (a forged envelope?)"
            return Lost(protocol.OutcomeFrame("", OutcomeKind.NOT_CLAIMED, error=why))
        assert claim.run is not None
        return protocol.ClaimedAttempt(claim.max_tries, claim.queue, now, vars(claim.run))

    def service(self, envelope: protocol.TaskEnvelope, claimed: protocol.ClaimedAttempt) -> AttemptService:
        return AttemptService(self, envelope, claimed)

    def _claim_batch(self, items: Sequence[tuple[TaskInstanceKey, str, str]]) -> list[attempts.Claim]:
        now = utcnow()
        for attempt in retrying(self._settings.database):  # a claim that won is not repeated: committed
            with attempt, attempts.attempt_db(self._sessions) as db:
                return attempts.claim_many(db, items, hostname=self.hostname, pid=os.getpid(), now=now)
        raise AssertionError("unreachable: retrying re-raises")

    def _end_batch(self, ends: Sequence[attempts.EndRecord]) -> list[tuple[attempts.Finish, bool]]:
        for attempt in retrying(self._settings.database):  # every write is conditional: safe to repeat
            with attempt, self._sessions() as session:
                return attempts.record_ends(session, ends, max_xcom_bytes=self._settings.core.max_xcom_size)
        raise AssertionError("unreachable: retrying re-raises")

    def db_access(self) -> DbAccess:
        return DbAccess(self._settings, self._sessions)


class AttemptService:
    """Answers one task process (``rabbitrun.worker.supervisor.ChannelService``) for its attempt."""

    def __init__(self, owner: AttemptOwner, envelope: protocol.TaskEnvelope, claimed: protocol.ClaimedAttempt) -> None:
        self._owner, self._envelope, self._claimed = owner, envelope, claimed
        self._key = envelope.key
        self._access: DbAccess | None = None  # one per attempt: its Variable reads are cached for it

    async def data(self, request: protocol.DataRequest) -> protocol.DataReply:
        try:
            value = await asyncio.to_thread(self._serve, request.op, request.args)
        except VariableNotFound:
            return protocol.DataReply(error="not found", error_type="VariableNotFound")
        except ConnectionNotFound:
            return protocol.DataReply(error="not found", error_type="ConnectionNotFound")
        except RabbitrunError as exc:
            return protocol.DataReply(error=str(exc), error_type=type(exc).__name__)
        except DBAPIError as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0]
            return protocol.DataReply(error=f"metadata database unavailable: {reason}", error_type="TaskChannelError")
        return protocol.DataReply(value)

    def _serve(self, op: DataOp, args: Mapping[str, Any]) -> Any:
        if self._access is None:
            self._access = self._owner.db_access()
        access, key = self._access, self._key
        if op == DataOp.GET_VARIABLE:
            return access.variables.get(args["key"], default_var=None)
        if op == DataOp.SET_VARIABLE:
            access.variables.set(args["key"], args["value"], False, args["description"])
            return None
        if op == DataOp.DELETE_VARIABLE:
            return access.variables.delete(args["key"])
        if op == DataOp.GET_CONNECTION:
            return access.connections.get(args["conn_id"]).as_dict()
        if op == DataOp.XCOM_ROWS:
            dag_id, run_id = self._readable_run(args, "pull XComs")
            rows = access.xcom_rows(dag_id, run_id, _strings(args["task_ids"]), args["key"])
            return [[task_id, map_index, data, value_type] for (task_id, map_index), (data, value_type) in rows.items()]
        if op == DataOp.PUT_XCOM:
            access.put_xcom_row(key, args["key"], args["data"], args["value_type"])
            return None
        if op == DataOp.MAPPED_INDEXES:
            dag_id, run_id = self._readable_run(args, "read mapped instances")
            return access.mapped_indexes(dag_id, run_id, _strings(args["task_ids"]))
        if op == DataOp.RESCHEDULE_HISTORY:
            history = access.reschedule_history(key)
            return [ts(history.first_started_at), history.reschedules]
        if op == DataOp.EXTERNAL_STATES:
            dates = [_date(value) for value in args["dates"]]
            return access.external_states(args["dag_id"], args["task_id"], dates)
        raise ProtocolError(f"no data operation {op!r}")

    def _readable_run(self, args: Mapping[str, Any], what: str) -> tuple[str, str]:
        """The (dag_id, run_id) asked for, when this attempt may read it: its own DAG run, or any run
        of a DAG its DAG names in ``xcom_pull_from`` (carried by the envelope)."""
        dag_id, run_id = args["dag_id"], args["run_id"]
        if not isinstance(dag_id, str) or not isinstance(run_id, str):
            raise ProtocolError("dag_id and run_id must be strings")
        if (dag_id, run_id) == (self._key.dag_id, self._key.run_id):
            return dag_id, run_id
        allowed = self._envelope.xcom_pull_from
        if "*" in allowed or dag_id in allowed:
            return dag_id, run_id
        raise AccessDenied(
            f"task {self._key} may {what} of its own DAG run only, not of {dag_id} run {run_id} "
            f"(a DAG lists the DAG ids it may read from in xcom_pull_from)"
        )

    async def finish(self, frame: protocol.FinishFrame) -> tuple[protocol.FinishReply, protocol.OutcomeFrame]:
        """Record the end the task reports (group-committed); what the delivery's outcome is."""
        try:
            state = TaskState(frame.state)
        except ValueError:
            raise ProtocolError(f"a finish names no task state: {frame.state!r}") from None
        if state not in attempts.END_STATES:
            raise ProtocolError(f"an attempt cannot end in {state.value}")
        if state in (TaskState.UP_FOR_RETRY, TaskState.UP_FOR_RESCHEDULE) and frame.next_retry_at is None:
            raise ProtocolError(f"a finish in {state.value} needs its due time")
        started = self._claimed.started_at
        ended = min(max(frame.ended_at, started), utcnow())  # the worker's clock bounds what the task says
        finish = attempts.Finish(state, ended, frame.reason or None, frame.next_retry_at)
        if state == TaskState.SUCCESS and frame.skip:
            finish = self._checked_skips(finish, frame.skip)
        value = frame.value if finish.state == state else None  # a refused success keeps no return value
        end = attempts.EndRecord(self._key, finish, started, value, self._envelope.id, self._owner.hostname)
        try:
            recorded, stands = await self._owner.ends.submit(end)
        except DBAPIError as exc:
            reason = f"metadata database unavailable at task end: {str(exc.orig or exc).strip().splitlines()[0]}"
            why = f"{reason}; the attempt runs again (same try) once its lease expires"
            log.error("%s: cannot record its end: %s", self._key, why)
            return protocol.FinishReply(False, state.value, why), protocol.OutcomeFrame(
                "", OutcomeKind.NOT_CLAIMED, error=why
            )
        changed = recorded.state != state  # FAILED: its return value was over the XCom size limit
        error = (recorded.reason or "") if changed else frame.error
        reply = protocol.FinishReply(stands, recorded.state.value, error if changed else "")
        if not stands:  # decided elsewhere (its lease expired, it was cleared or marked): not this delivery's
            why = f"attempt {self._key} was decided elsewhere before its end was recorded"
            return reply, protocol.OutcomeFrame("", OutcomeKind.NOT_CLAIMED, error=why)
        return reply, protocol.OutcomeFrame("", recorded.state.value, True, started, recorded.ended_at, error)

    def _checked_skips(self, finish: attempts.Finish, skip: tuple[str, ...]) -> attempts.Finish:
        """The success with the skips it reports, when its envelope says it may make every one (they
        are downstream of it); else the attempt fails and nothing is skipped: a task process cannot
        skip unrelated tasks of its run, whatever it sends."""
        refused = outcomes.refused_skips(self._key.task_id, skip, self._envelope.may_skip)
        if refused is None:
            return dataclasses.replace(finish, skip=skip)
        log.error("%s: %s", self._key, refused)
        return attempts.Finish(TaskState.FAILED, finish.ended_at, refused)


def _strings(values: Sequence[Any]) -> list[str]:
    if not all(isinstance(v, str) for v in values):
        raise ProtocolError("task ids must be strings")
    return list(values)


def _date(value: Any) -> datetime:
    when = dt(value, "dates")
    assert when is not None
    return when
