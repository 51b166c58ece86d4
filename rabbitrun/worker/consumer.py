"""The worker's AMQP consumer: the one place that acks, requeues or dead-letters.

Each delivery's attempt is claimed by this worker (``rabbitrun.worker.owner``, batched with the
claims arriving with it) before a task process runs it; a claim that loses settles the delivery at
once. What to do with a delivery is decided by :func:`~rabbitrun.worker.decisions.decide`, a pure
function of how the attempt ended; this module then performs it in the order DESIGN rule 3 asks
for: the attempt is durable in the DB, the result is published with a confirm, and only then is
the delivery acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy.orm import Session, sessionmaker

from rabbitrun import protocol
from rabbitrun.broker.events import EventPublisher
from rabbitrun.broker.publisher import ConfirmedPublisher
from rabbitrun.errors import BrokerError, ProtocolError
from rabbitrun.keys import TaskInstanceKey, log_relpath
from rabbitrun.metrics import Metrics
from rabbitrun.models import attempts, transitions
from rabbitrun.models.base import utcnow
from rabbitrun.names import REASON_HEADER, Names, consumer_tag, task_event_key
from rabbitrun.states import OutcomeKind, TaskState
from rabbitrun.worker.acks import EarlyAck, ack, nack
from rabbitrun.worker.decisions import Action, Decision, decide
from rabbitrun.worker.livelogs import LiveLogs
from rabbitrun.worker.owner import AttemptOwner, Lost
from rabbitrun.worker.pool import Slots
from rabbitrun.worker.supervisor import ChildReport, Supervisor

log = logging.getLogger("rabbitrun.worker")


class Consumer:
    """Consumes task queues with prefetch = concurrency and runs each delivery in a child."""

    def __init__(
        self,
        *,
        names: Names,
        supervisor: Supervisor,
        owner: AttemptOwner,
        publisher: ConfirmedPublisher,
        sessions: sessionmaker[Session],
        hostname: str,
        concurrency: int,
        ack_running_after_s: float,
        log_folder: Path,
        max_priority: int,
        events: EventPublisher | None = None,
        metrics: Metrics | None = None,
        live_logs: LiveLogs | None = None,
    ) -> None:
        self._names, self._supervisor, self._publisher = names, supervisor, publisher
        self.owner = owner
        self._live_logs = live_logs
        self._log_folder = log_folder
        self._events, self._metrics = events, metrics
        self.reserved: dict[str, protocol.TaskEnvelope] = {}  # received, waiting for a slot
        self.outcomes: dict[str, int] = {}  # finished attempts by state, for `inspect stats`
        self._sessions, self._hostname = sessions, hostname
        self.slots = Slots(concurrency)
        self._ack_running_after_s = ack_running_after_s
        self._max_priority = max_priority
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats: dict[str, int] = {}

    @property
    def busy(self) -> int:
        return len(self._tasks)

    def on_message(self, message: AbstractIncomingMessage) -> Any:
        """aio-pika callback: run each delivery as its own asyncio task."""
        task = asyncio.get_running_loop().create_task(self._handle(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None

    async def stop_taking(self) -> None:
        """Warm shutdown: no delivery starts from now on; those waiting for a slot go back."""
        await self.slots.close()

    async def drain(self, timeout_s: float) -> bool:
        """Wait for in-flight deliveries; True when all finished in time."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        return not pending

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        try:
            envelope = protocol.decode_envelope(message.body)
        except ProtocolError as exc:
            await self._dead_letter(message, exc.reason)
            return
        expected_tag = consumer_tag("worker", self._hostname, envelope.queue)
        if message.consumer_tag is not None and message.consumer_tag != expected_tag:
            # a forged envelope naming an isolated queue, published into one this worker consumes
            # (issue 17, finding 5): never run, dead-lettered with the reason
            log.warning(
                "%s: envelope names queue %r but came from another queue; refused", envelope.key, envelope.queue
            )
            await self._dead_letter(message, f"envelope names queue {envelope.queue!r} but was delivered from another")
            return
        loop = asyncio.get_running_loop()
        settled: list[asyncio.Task[None]] = []
        self._emit(protocol.TaskReceived(self._hostname, envelope.key, envelope.id, bool(message.redelivered)))
        if message.redelivered and self._metrics is not None:
            self._metrics.redeliveries.inc()

        early_ack: EarlyAck | None = None

        async def settle_after_early_ack(report: ChildReport) -> None:
            if early_ack is not None:
                await early_ack.stop()  # an early ack in flight completes first: never two acks
            await self._settle(message, envelope, report)

        def on_reported(report: ChildReport) -> None:
            # the child's outcome is durable in the DB: publish and ack now, don't wait for its exit
            if report.outcome is not None and decide(report).action == Action.PUBLISH_AND_ACK:
                settled.append(loop.create_task(settle_after_early_ack(report)))

        self.reserved[envelope.id] = envelope
        try:  # local concurrency bound (the slot is held until the process exits)
            acquired = await self.slots.acquire()
        finally:
            self.reserved.pop(envelope.id, None)
        if not acquired:  # the warm shutdown began while it waited: it never starts here
            self._count(Action.REQUEUE)
            self._emit(
                protocol.TaskRevoked(
                    self._hostname, envelope.key, envelope.id, "worker shutting down before it started"
                )
            )
            log.info("%s: worker shutting down; handing the waiting delivery back to the queue", envelope.key)
            await nack(message, requeue=True)
            return
        started = False
        try:
            claimed = await self.owner.claim(envelope)
            if isinstance(claimed, Lost):  # not this delivery's to run: settled below, nothing started
                report = ChildReport(envelope.id, outcome=claimed.outcome)
            else:
                started = True
                self._started(envelope)
                early_ack = EarlyAck(message, envelope, self._ack_running_after_s)
                try:
                    report = await self._supervisor.run(
                        envelope, claimed, self.owner.service(envelope, claimed), on_reported
                    )
                finally:
                    await early_ack.stop()
        finally:
            await self.slots.release()
            if started and self._metrics is not None:
                self._metrics.tasks_running.dec()
        if settled:
            await settled[0]
        else:
            await self._settle(message, envelope, report)

    def _emit(self, event: protocol.TaskEvent) -> None:
        if self._events is not None:
            self._events.emit(task_event_key(event.key.dag_id, event.key.task_id, event.kind), event)

    def _started(self, envelope: protocol.TaskEnvelope) -> None:
        self._emit(protocol.TaskStarted(self._hostname, envelope.key, envelope.id))
        if self._metrics is not None:
            lag_s = max(0.0, (utcnow() - envelope.enqueued_at).total_seconds())
            self._metrics.queue_lag.labels(envelope.queue).observe(lag_s)
            self._metrics.tasks_running.inc()

    def _finished(self, envelope: protocol.TaskEnvelope, report: ChildReport, decision: Decision) -> None:
        if self._live_logs is not None:  # a follower stops at the final event: its lines go first
            self._live_logs.flush(envelope)
        if report.timed_out:
            self._emit(protocol.TaskTimedOut(self._hostname, envelope.key, envelope.id, report.timed_out))
        if decision.action == Action.REQUEUE:
            self._emit(protocol.TaskRevoked(self._hostname, envelope.key, envelope.id, decision.reason))
            return
        outcome = report.outcome
        if outcome is None or outcome.state not in protocol.TaskEnded.KINDS:
            return
        state = outcome.state
        self.outcomes[state] = self.outcomes.get(state, 0) + 1
        self._emit(protocol.TaskEnded(self._hostname, envelope.key, envelope.id, TaskState(state), outcome.error[:500]))
        if self._metrics is not None:
            key = envelope.key
            self._metrics.task_outcomes.labels(key.dag_id, key.task_id, state).inc()
            if outcome.started_at and outcome.ended_at:
                self._metrics.task_duration.labels(key.dag_id, key.task_id).observe(
                    max(0.0, (outcome.ended_at - outcome.started_at).total_seconds())
                )

    async def _settle(
        self, message: AbstractIncomingMessage, envelope: protocol.TaskEnvelope, report: ChildReport
    ) -> None:
        decision = decide(report)
        self._count(decision.action)
        key = envelope.key
        if decision.action == Action.DEAD_LETTER:
            if report.claim is not None:  # claimed, then its DAG did not load here: unclaim it first
                await asyncio.to_thread(self._release, envelope, f"not run: {decision.reason}")
            await self._dead_letter(message, decision.reason)
            return
        if decision.action == Action.ACK:
            log.info("%s: not running again (%s)", key, decision.reason)
            await ack(message)
            return
        if decision.action == Action.REQUEUE:
            self._finished(envelope, report, decision)
            log.warning("%s: %s; requeueing the delivery", key, decision.reason)
            if decision.release:
                await asyncio.to_thread(self._release, envelope, decision.reason)
            if report.state == OutcomeKind.DB_UNAVAILABLE:
                if not message.redelivered:  # once per delivery, not every 2 s of an outage
                    await asyncio.to_thread(
                        self._append_to_attempt_log,
                        key,
                        (
                            f"WARNING - {decision.reason}; the attempt was not started and its delivery goes back "
                            "to the queue: it starts once the database is reachable again"
                        ),
                    )
                await asyncio.sleep(2.0)  # don't spin on a database that is down
            if message.processed:  # acked early (long task): the broker no longer holds it
                await self._republish(message, envelope)
            else:
                await nack(message, requeue=True)
            return
        if decision.action == Action.RECORD_AND_ACK:
            assert report.claim is not None  # a delivery whose claim lost has its outcome
            recorded = await asyncio.to_thread(self._record_death, envelope, report.claim, decision.reason)
            log.error("%s: %s", key, decision.reason)
            if not recorded:  # decided elsewhere meanwhile (lease expired, cleared): that decision stands
                log.info("%s: its end was decided elsewhere; not recording the death", key)
                await ack(message)
                return
            # the outcome is the parent's record now (no frame of the child says it)
            report.outcome = protocol.OutcomeFrame("", recorded, claimed=True, error=decision.reason)
        self._finished(envelope, report, decision)
        await self._publish_result(message, envelope, report)
        await ack(message)

    def _record_death(self, envelope: protocol.TaskEnvelope, claim: protocol.ClaimedAttempt, reason: str) -> str | None:
        """The task process died without reporting its end: fail (or retry) the attempt this
        worker claimed, while this delivery still owns it (its fencing token).

        The task's retry_delay lives in the DAG, which this lean parent does not
        import: the scheduler put this try's delay in the envelope.
        """
        key = envelope.key
        delay = timedelta(seconds=envelope.retry_delay_s)
        outcome = attempts.failure_outcome(key.try_number, claim.max_tries, delay, reason, utcnow())
        with self._sessions() as session:
            if not attempts.finish(session, key, outcome, started_at=claim.started_at, envelope_id=envelope.id):
                return None
        self._append_to_attempt_log(key, f"ERROR - {reason}; marking the attempt {outcome.state.value}")
        return outcome.state.value

    def _release(self, envelope: protocol.TaskEnvelope, reason: str) -> None:
        """The child was stopped by this worker's shutdown before it released its attempt: put it back
        to QUEUED (same try) here, so the requeued delivery claims it again. A no-op when the attempt
        is not RUNNING any more (the child finished it just before it died)."""
        key, now = envelope.key, utcnow()
        try:
            with self._sessions() as session:
                released = transitions.release(session, key, reason, now, envelope_id=envelope.id)
                if released:  # the try's history row says so; a finished one keeps its own
                    attempts.record_attempt(session, key, "terminated", None, now, self._hostname, None, reason)
                session.commit()
        except Exception as exc:  # noqa: BLE001 - DB down: the lease expiry recovers it
            log.warning(
                "%s: cannot release the attempt (%s); the scheduler re-runs it once its lease expires", key, exc
            )
            return
        if released:
            self._append_to_attempt_log(key, f"WARNING - {reason}; the attempt goes back to the queue (same try)")

    def _append_to_attempt_log(self, key: TaskInstanceKey, line: str) -> None:
        """The child could not write its own last words: the parent adds them to the per-try log."""
        path = self._log_folder / log_relpath(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.write(f"[{utcnow().isoformat(timespec='milliseconds')}] {{worker}} {line}\n")
        except OSError as exc:
            log.warning("%s: cannot append to %s: %s", key, path, exc)

    async def _publish_result(
        self, message: AbstractIncomingMessage, envelope: protocol.TaskEnvelope, report: ChildReport
    ) -> None:
        if not message.reply_to:
            return
        outcome = report.outcome
        assert outcome is not None  # published after the child's outcome, or after the parent recorded its end
        result = protocol.TaskResult(
            envelope_id=envelope.id,
            key=envelope.key,
            state=outcome.state,
            exit_code=report.exit_status,
            hostname=self._hostname,
            started_at=outcome.started_at,
            ended_at=outcome.ended_at,
            error=outcome.error,
        )
        try:
            await self._publisher.publish(
                "", message.reply_to, protocol.encode_result(result), protocol.result_properties(result)
            )
        except BrokerError as exc:
            # the DB already holds the outcome; the scheduler's periodic pass will see it
            log.warning("%s: result not delivered to %s (%s)", envelope.key, message.reply_to, exc)

    async def _republish(self, message: AbstractIncomingMessage, envelope: protocol.TaskEnvelope) -> None:
        """Give a released attempt whose delivery was already acked a message again, with a confirm.

        Same envelope (id and try): the claim's compare-and-set keeps it single. If
        the broker does not confirm, the attempt goes back to SCHEDULED so the
        scheduler publishes it afresh: either way a message or the scheduler owns it.
        """
        try:
            await self._publisher.publish(
                self._names.tasks_exchange,
                envelope.queue,
                protocol.encode_envelope(envelope),
                protocol.envelope_properties(envelope, message.reply_to or "", self._max_priority),
            )
        except BrokerError as exc:
            reason = f"released on worker shutdown; republishing its envelope failed: {exc}"
            rescheduled = await asyncio.to_thread(self._reschedule, envelope, reason)
            log.error(
                "%s: %s; %s",
                envelope.key,
                reason,
                "the scheduler will publish it again" if rescheduled else "its state changed meanwhile",
            )
            return
        log.info("%s: its delivery was acked early; envelope republished for another worker", envelope.key)

    def _reschedule(self, envelope: protocol.TaskEnvelope, reason: str) -> bool:
        with self._sessions() as session:
            return transitions.mark_for_republish(session, envelope.key, envelope.id, reason)

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str) -> None:
        """Republish the raw body to the DLX with the reason header, then ack (logged once)."""
        log.error("dead-lettering message %s from %s: %s", message.message_id, message.routing_key, reason)
        self._count(Action.DEAD_LETTER)
        if self._metrics is not None:
            self._metrics.dead_lettered.inc()
        headers = dict(message.headers or {})
        headers[REASON_HEADER] = reason[:1000]
        headers["x-rabbitrun-original-queue"] = message.routing_key or ""
        props = {
            "content_type": message.content_type,
            "delivery_mode": 2,
            "message_id": message.message_id,
            "correlation_id": message.correlation_id,
            "app_id": "rabbitrun",
        }
        try:
            await self._publisher.publish(
                self._names.dead_letter_exchange,
                message.routing_key or "",
                message.body,
                {k: v for k, v in props.items() if v is not None},
                headers=headers,
            )
        except BrokerError as exc:
            log.error("cannot dead-letter (%s); rejecting to the queue's dead-letter exchange instead", exc)
            await message.reject(requeue=False)
            return
        await ack(message)

    def _count(self, action: Action) -> None:
        self.stats[action.value] = self.stats.get(action.value, 0) + 1
