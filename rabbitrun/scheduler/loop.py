"""The scheduler's event-driven loop: results wake it, timers and a short poll cover the rest.

A result from the reply queue marks its run dirty and wakes the loop at once,
so downstream tasks are queued within milliseconds (DESIGN rule 5). The loop
also wakes when the earliest retry or sensor reschedule falls due. New runs,
stuck QUEUED tasks and zombies are found by a periodic full pass. DAG-level
callbacks of finished runs run in a thread, off the loop.
DB work runs in a thread (:mod:`rabbitrun.scheduler.runs`, ``readiness``, ``queueing``
and ``recovery``); publishing stays on the event loop.

Several schedulers may share a PostgreSQL database (the row locks of those modules keep
their work apart); each needs its own scheduler_id, hence its own reply queue,
which it consumes exclusively. On SQLite a lock file refuses a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from rabbitrun import protocol
from rabbitrun.authoring import DagBag
from rabbitrun.errors import DatabaseUnavailable, RabbitrunError, SchedulerAlreadyRunning
from rabbitrun.models.base import utcnow
from rabbitrun.settings import Settings, default_hostname
from rabbitrun.states import DUE_STATES

log = logging.getLogger("rabbitrun.scheduler")
_FINAL = {"success", "failed", "skipped"}
_WAITING = {s.value for s in DUE_STATES}  # due again at next_retry_at
#: With the default scheduler_id (the host name), further schedulers on the host take <host>-2, -3, ...
MAX_SCHEDULERS_PER_HOST = 16
_DB_RETRY_MIN_S, _DB_RETRY_MAX_S = 0.5, 10.0  # waits while the metadata DB is unreachable


class Scheduler:
    def __init__(self, settings: Settings) -> None:
        from rabbitrun.models.engine import make_engine, session_factory

        self.settings = settings
        self.engine = make_engine(settings.database)
        self.sessions = session_factory(self.engine)
        self._wake = asyncio.Event()
        self._dirty: set[tuple[str, str]] = set()
        self._maybe_done: set[tuple[str, str]] = set()
        self._next_due: datetime | None = None  # earliest retry / sensor reschedule; the loop wakes then
        self._due_stale = True
        self._callbacks: set[asyncio.Task[None]] = set()
        self._waiting: set[tuple[str, str]] = set()  # runs whose ready tasks wait for a slot
        self._stopping = asyncio.Event()
        self.dagbag: DagBag | None = None
        self._last_parse = 0.0
        self._last_full = 0.0
        self.workers: dict[str, float] = {}  # hostname -> monotonic time of its last heartbeat
        from rabbitrun.metrics import Metrics

        self.metrics = Metrics(settings.metrics)
        from rabbitrun.models.wakeup import Listener

        self._listener = Listener(str(settings.database.url), self.on_new_run)

    def on_result(self, result: protocol.TaskResult) -> None:
        """A result only wakes the loop; the DB says what happened. A finished leaf task cannot make
        anything ready, so its run only needs the cheap "is it done?" check, not a full evaluation."""
        run = (result.key.dag_id, result.key.run_id)
        self._dirty |= self._waiting  # the attempt that ended freed its slot: waiting tasks may go now
        if result.state in _FINAL and self._is_leaf(result.key.dag_id, result.key.task_id):
            self._maybe_done.add(run)
        else:
            self._dirty.add(run)
        if result.state in _WAITING:
            self._due_stale = True
        self._wake.set()

    def on_new_run(self) -> None:
        """`dags trigger` nudged us (rabbitrun.models.wakeup): a full pass starts the new run now."""
        self._last_full = 0.0
        self._wake.set()

    def _is_leaf(self, dag_id: str, task_id: str) -> bool:
        try:
            return self.dagbag is not None and not self.dagbag.get_dag(dag_id).get_task(task_id).downstream_task_ids
        except RabbitrunError:
            return False

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self, ready: Any = None) -> int:
        from rabbitrun.models import migrate, scheduler_lock

        await asyncio.to_thread(migrate.check, self.engine)
        lock = scheduler_lock.acquire(self.settings.database)  # SQLite: the only scheduler, or refused
        try:
            return await self._run(ready)
        finally:
            if lock is not None:
                lock.close()

    def _scheduler_ids(self) -> list[str]:
        """The configured id; the default one (the host name) falls back to <host>-2, -3, ... so that
        schedulers on one host never share a reply queue, and a restart takes its old one back."""
        configured = self.settings.scheduler.scheduler_id
        if configured != default_hostname():
            return [configured]
        return [configured] + [f"{configured}-{n}" for n in range(2, MAX_SCHEDULERS_PER_HOST + 1)]

    async def _connect(self) -> tuple[Any, Any]:
        """Connect and consume the reply queue of the first scheduler_id no live scheduler holds."""
        from rabbitrun.broker.connection import connect
        from rabbitrun.broker.topology import declare_topology, load_topology
        from rabbitrun.executor import Executor
        from rabbitrun.names import Names

        names = Names(self.settings.broker.prefix)
        ids = self._scheduler_ids()
        for scheduler_id in ids:
            s = dataclasses.replace(
                self.settings, scheduler=dataclasses.replace(self.settings.scheduler, scheduler_id=scheduler_id)
            )
            connection = await connect(s.broker, "scheduler", scheduler_id)
            try:
                topology = load_topology(Path(s.broker.topology_file) if s.broker.topology_file else None, s.broker)
                await declare_topology(connection, topology, names, scheduler_id=scheduler_id)
                executor = Executor(connection, names, s, self.metrics)
                await executor.start(self.on_result)
            except SchedulerAlreadyRunning:
                await connection.close()
                if scheduler_id == ids[-1]:
                    raise
                log.info("scheduler_id %s is held by another scheduler on this host: trying the next", scheduler_id)
                continue
            except BaseException:
                await connection.close()
                raise
            self.settings = s
            return connection, executor
        raise AssertionError("unreachable")

    async def _run(self, ready: Any) -> int:
        from rabbitrun.names import Names

        connection, executor = await self._connect()
        s = self.settings
        names = Names(s.broker.prefix)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        try:
            await self._watch_workers(connection, names)
            if s.metrics.scheduler_port >= 0:
                port = self.metrics.serve(s.metrics.scheduler_port, s.metrics.host)
                log.info("metrics on http://%s:%s/metrics", s.metrics.host, port)
            await asyncio.to_thread(self._parse)
            await self._listener.start()
            await self._adopt(executor)
            log.info("scheduler %s ready: reply queue %s", s.scheduler.scheduler_id, executor.reply_queue)
            if ready is not None:
                ready()
            outage_s = 0.0  # seconds waited so far in a metadata DB outage
            while not self._stopping.is_set():
                try:
                    await self._iterate(executor)
                    await self._wait_for_work()
                except Exception as exc:  # noqa: BLE001 - only a DB outage is survived; the rest is re-raised
                    outage_s = await self._wait_out_db_outage(exc, outage_s)
                    continue
                if outage_s:
                    outage_s = 0.0
                    log.info("metadata database reachable again: a full pass, and queued envelopes republished")
                    await self._adopt(executor)  # a pass cut off between its commit and its publish
                self._wake.clear()
            if self._callbacks:
                await asyncio.wait(set(self._callbacks), timeout=s.scheduler.poll_interval_s * 10)
            await executor.close()
            return 0
        finally:
            await self._listener.close()
            await connection.close()
            self.engine.dispose()

    async def _wait_out_db_outage(self, exc: Exception, waited_s: float) -> float:
        """The metadata DB went away (restart, network): pause scheduling, log it, retry with a
        growing wait, and make the first pass after it a full one. Results that arrive meanwhile
        only mark runs dirty; the database is the source of truth when it is back. Any other
        error is a bug and stops the scheduler. Returns the total waited so far."""
        from rabbitrun.models.engine import as_unavailable, masked

        unavailable = exc if isinstance(exc, DatabaseUnavailable) else as_unavailable(exc, masked(self.engine))
        if unavailable is None:
            raise exc
        wait_s = min(_DB_RETRY_MAX_S, max(_DB_RETRY_MIN_S, waited_s))  # ~ the time down so far, capped
        log.warning("%s: scheduling paused, next try in %.1fs", unavailable, wait_s)
        self._last_full = 0.0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), wait_s)
        return waited_s + wait_s

    async def _adopt(self, executor: Any) -> None:
        """Take over what a previous scheduler left: RUNNING attempts need nothing (their results
        wait in the durable reply queue, zombies are found by heartbeat); QUEUED ones get their
        envelope republished, as its publish may never have been confirmed."""
        from rabbitrun.scheduler import queueing

        def load() -> list[protocol.TaskEnvelope]:
            assert self.dagbag is not None
            with self.sessions() as session:
                return queueing.queued_envelopes(session, self.dagbag, utcnow())

        envelopes = await asyncio.to_thread(load)
        if not envelopes:
            return
        failures = await executor.publish(envelopes)
        if failures:
            await asyncio.to_thread(self._put_back, failures)
        log.info(
            "adopted %s queued task instance(s): envelopes republished (%s not confirmed, put back)",
            len(envelopes),
            len(failures),
        )

    async def _watch_workers(self, connection: Any, names: Any) -> None:
        """Worker heartbeats from the events exchange: who is alive, logged when it changes."""
        from rabbitrun.errors import ProtocolError

        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in ("worker.*.heartbeat", "worker.*.worker_offline"):
            await queue.bind(names.events_exchange, routing_key=key)

        async def on_event(message: Any) -> None:
            try:
                event = protocol.decode_event(message.body)
            except ProtocolError:
                return
            host = event.hostname
            if isinstance(event, protocol.WorkerOffline):
                if self.workers.pop(host, None) is not None:
                    log.info("worker %s went offline (shutdown)", host)
                return
            if not isinstance(event, protocol.Heartbeat):
                return
            if host not in self.workers:
                log.info("worker %s online (queues %s)", host, ",".join(event.queues))
            self.workers[host] = time.monotonic()

        await queue.consume(on_event, no_ack=True)

    def _forget_silent_workers(self) -> None:
        limit = 3 * self.settings.worker.heartbeat_interval_s
        for host, seen in list(self.workers.items()):
            if time.monotonic() - seen > limit:
                del self.workers[host]
                log.warning("worker %s stopped sending heartbeats (%.0fs): considered offline", host, limit)

    async def _wait_for_work(self) -> None:
        """Until a result arrives, the poll interval passes, or a new run was triggered (checked
        every ``new_run_check_s`` with one indexed query, so `dags trigger` starts at once)."""
        deadline = time.monotonic() + self.settings.scheduler.poll_interval_s
        if self._next_due is not None:  # a retry or a sensor's next poke: wake up for it, not at the next poll
            deadline = min(deadline, time.monotonic() + (self._next_due - utcnow()).total_seconds())
        while time.monotonic() < deadline and not self._wake.is_set():
            try:
                await asyncio.wait_for(
                    self._wake.wait(),
                    timeout=min(self.settings.scheduler.new_run_check_s, max(0.0, deadline - time.monotonic())),
                )
            except TimeoutError:
                if await asyncio.to_thread(self._queued_runs_exist):
                    self._last_full = 0.0  # a full pass starts the new run now
                    return

    def _queued_runs_exist(self) -> bool:
        from rabbitrun.scheduler import runs

        with self.sessions() as session:
            return runs.queued_runs_exist(session)

    async def _iterate(self, executor: Any) -> None:

        now_mono = time.monotonic()
        self._forget_silent_workers()
        full = now_mono - self._last_full >= self.settings.scheduler.poll_interval_s
        dirty, self._dirty = self._dirty, set()
        maybe_done, self._maybe_done = self._maybe_done - dirty, set()
        finished: list[Any] = []
        if maybe_done and not full:
            await asyncio.to_thread(self._finish_runs, maybe_done, finished)
        if now_mono - self._last_parse >= self.settings.scheduler.dag_dir_list_interval_s:
            await asyncio.to_thread(self._parse)
        due = full or self._due_stale or (self._next_due is not None and self._next_due <= utcnow())
        self._due_stale = False
        envelopes, notes = await asyncio.to_thread(self._pass, None if full else dirty, due, finished)
        if full:
            self._last_full = now_mono
            self._waiting = notes.waiting
        else:
            self._waiting = (self._waiting - dirty) | notes.waiting
        if notes.again:  # locked by another scheduler right now, or a task just failed: look again soon
            self._dirty |= notes.again
            asyncio.get_running_loop().call_later(self.settings.scheduler.new_run_check_s, self._wake.set)
        if finished:
            self._run_dag_callbacks(finished)
        if envelopes:
            failures = await executor.publish(envelopes)
            if failures:
                await asyncio.to_thread(self._put_back, failures)
                self._wake.set()

    def _parse(self) -> None:
        from rabbitrun.scheduler import runs

        if self.dagbag is None:
            self.dagbag = DagBag(
                Path(self.settings.core.dags_folder),
                include_examples=self.settings.core.load_examples,
                airflow_compat=self.settings.core.airflow_compat,
                plugins_folder=Path(self.settings.core.plugins_folder) if self.settings.core.plugins_folder else None,
            )
        else:
            self.dagbag.refresh()
        for ref, err in self.dagbag.import_errors.items():
            log.error("DAG file %s failed to import (line %s): %s", ref, err.lineno, err.exception)
        with self.sessions() as session:
            runs.sync_dags(session, self.dagbag, utcnow())
        self._last_parse = time.monotonic()

    def _pass(
        self, only: set[tuple[str, str]] | None, due: bool, finished: list[Any]
    ) -> tuple[list[protocol.TaskEnvelope], Any]:
        """One scheduling pass; ``only`` limits it to runs that just got results (plus, when ``due``,
        runs with a retry or reschedule that fell due, and the next due time is read again)."""
        from rabbitrun.scheduler import readiness, recovery, runs

        assert self.dagbag is not None
        s, now, notes = self.settings, utcnow(), readiness.PassNotes()
        with self.sessions() as session:
            if due and only is not None:
                only = only | runs.due_runs(session, now)
            if only is None:
                for run in runs.create_scheduled_runs(session, self.dagbag, now):
                    log.info("DAG run %s of %s created by its schedule", run.run_id, run.dag_id)
                for run in runs.start_queued_runs(session, self.dagbag, s, now):
                    log.info("DAG run %s of %s started", run.run_id, run.dag_id)
                recovery.surface_stuck_queued(session, s, now, self.metrics.count_scheduler_outcome)
                recovery.requeue_lost_attempts(session, s, now, self.metrics.count_scheduler_outcome)
                runs.fail_timed_out_runs(session, self.dagbag, now, finished)
            envelopes = readiness.schedule(session, self.dagbag, s, now, only, notes, finished)
            if due:  # one still due now could not be queued (e.g. a full pool): the poll retries it
                next_due = runs.next_due_at(session)
                self._next_due = next_due if next_due is not None and next_due > now else None
            if only is None:
                counts = runs.state_counts(session)
                self.metrics.tasks_queued.set(counts.get("queued", 0) + len(envelopes))
                self.metrics.tasks_running.set(counts.get("running", 0))
            return envelopes, notes

    def _finish_runs(self, runs: set[tuple[str, str]], finished: list[Any]) -> None:
        from rabbitrun.scheduler.runs import finish_runs_if_done

        assert self.dagbag is not None
        with self.sessions() as session:
            finish_runs_if_done(session, self.dagbag, runs, utcnow(), finished)

    def _run_dag_callbacks(self, finished: list[Any]) -> None:
        """DAG on_success/on_failure callbacks, once per finished run, in a thread so a slow
        callback never delays scheduling."""
        from rabbitrun.scheduler import callbacks as dag_callbacks

        assert self.dagbag is not None
        todo = [
            (run, self.dagbag.dags[run.dag_id])
            for run in finished
            if dag_callbacks.has_callback(self.dagbag.dags.get(run.dag_id), run.state)
        ]
        if not todo:
            return
        task = asyncio.get_running_loop().create_task(
            asyncio.to_thread(dag_callbacks.run_callbacks, todo, self.sessions)
        )
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    def _put_back(self, failures: list[Any]) -> None:
        from rabbitrun.scheduler import queueing

        with self.sessions() as session:
            queueing.put_back(session, failures, utcnow(), self.metrics.count_scheduler_outcome)


def run_scheduler(settings: Settings, ready: Any = None) -> int:
    """Blocking entry point for the CLI and tests."""

    async def main() -> int:
        return await Scheduler(settings).run(ready)

    return asyncio.run(main())
