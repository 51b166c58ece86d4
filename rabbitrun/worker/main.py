"""Assemble and run a worker: zygote first, then the asyncio consumer; signals and shutdown.

The zygote is started first: a fresh interpreter without this process's secrets (settings with
every secret blanked, an environment without RABBITRUN__*), that forks the task processes; this
process claims their attempts, serves their data requests and records their ends.

Shutdown: the first SIGTERM/SIGINT is warm (stop consuming at once, let running
tasks finish for ``shutdown_timeout_s``, then SIGTERM them: they release their
attempts and the deliveries are requeued); a second one is cold (terminate the
running tasks now). A clean warm shutdown exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rabbitrun.settings import Settings
from rabbitrun.worker.pool import AutoscaleLimits, autoscale, lookahead_prefetch
from rabbitrun.worker.supervisor import Supervisor

log = logging.getLogger("rabbitrun.worker")


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    hostname: str
    queues: tuple[str, ...]
    concurrency: int
    autoscale: AutoscaleLimits | None


def options_from(settings: Settings) -> WorkerOptions:
    w = settings.worker
    limits = AutoscaleLimits.parse(w.autoscale) if w.autoscale else None
    return WorkerOptions(w.hostname, w.queues, limits.minimum if limits else w.concurrency, limits)


def run_worker(settings: Settings, ready: Any = None) -> int:
    """Blocking entry point used by the CLI and tests; returns the exit code."""
    options = options_from(settings)
    supervisor = Supervisor(settings, options.hostname)
    supervisor.start_zygote()  # before any import that starts threads
    try:
        return asyncio.run(_serve(settings, options, supervisor, ready))
    finally:
        supervisor.stop()


async def _serve(settings: Settings, options: WorkerOptions, supervisor: Supervisor, ready: Any) -> int:
    from rabbitrun import protocol
    from rabbitrun.broker.connection import connect
    from rabbitrun.broker.events import EventPublisher
    from rabbitrun.broker.publisher import ConfirmedPublisher
    from rabbitrun.broker.topology import declare_topology, load_topology
    from rabbitrun.metrics import Metrics
    from rabbitrun.models.engine import make_engine, session_factory
    from rabbitrun.names import Names, worker_event_key
    from rabbitrun.settings import mask_url
    from rabbitrun.worker.commands import WorkerParts, build_handlers
    from rabbitrun.worker.consumer import Consumer
    from rabbitrun.worker.control import ControlServer
    from rabbitrun.worker.livelogs import LiveLogs, ship_live_logs
    from rabbitrun.worker.owner import AttemptOwner

    loop = asyncio.get_running_loop()
    supervisor.attach(loop)
    names = Names(settings.broker.prefix)
    engine = make_engine(settings.database)
    sessions = session_factory(engine)
    connection = await connect(settings.broker, "worker", options.hostname)
    stop = _ShutdownSignals(loop)
    try:
        topology = load_topology(
            Path(settings.broker.topology_file) if settings.broker.topology_file else None, settings.broker
        )
        await declare_topology(connection, topology, names)
        publisher = await ConfirmedPublisher.open(connection, names, settings.broker.confirm_timeout_s)
        events = EventPublisher(names, options.hostname)
        metrics = Metrics(settings.metrics)
        live_logs = LiveLogs(events, Path(settings.logging.base_log_folder))
        consumer = Consumer(
            names=names,
            supervisor=supervisor,
            owner=AttemptOwner(settings, sessions, options.hostname),
            publisher=publisher,
            sessions=sessions,
            hostname=options.hostname,
            concurrency=options.concurrency,
            ack_running_after_s=settings.worker.ack_running_after_s,
            log_folder=Path(settings.logging.base_log_folder),
            max_priority=settings.broker.max_priority,
            events=events,
            metrics=metrics,
            live_logs=live_logs,
        )
        metrics.pool_size.set_function(lambda: consumer.slots.capacity)  # follows autoscale, pool-grow/shrink
        channel = await connection.channel()
        prefetch = (
            lookahead_prefetch(options.autoscale, options.concurrency) if options.autoscale else options.concurrency
        )
        await channel.set_qos(prefetch_count=prefetch)  # DESIGN rule 4: prefetch = concurrency
        parts = WorkerParts(
            settings,
            names,
            options.hostname,
            channel,
            consumer,
            supervisor,
            stop.first,
            connection_url=mask_url(str(settings.broker.url)),
            prefetch=prefetch,
        )
        for name in options.queues:
            await parts.add_consumer(name)
        control = ControlServer(names, options.hostname, build_handlers(parts), str(settings.control.secret_key))
        await control.start(connection)
        await events.open(connection)
        background = [
            loop.create_task(_renew_leases(supervisor, sessions, settings.worker)),
            loop.create_task(_announce(parts, events, metrics, settings.worker.heartbeat_interval_s)),
            loop.create_task(ship_live_logs(live_logs, supervisor)),
        ]
        if options.autoscale is not None:
            background.append(loop.create_task(_autoscale(options.autoscale, parts)))
        for task in background:
            task.add_done_callback(_log_crash)
        if settings.metrics.worker_port >= 0:
            port = metrics.serve(settings.metrics.worker_port, settings.metrics.host)
            log.info("metrics on http://%s:%s/metrics", settings.metrics.host, port)
        log.info(
            "worker %s ready: queues=%s concurrency=%s zygote pid=%s",
            options.hostname,
            ",".join(options.queues),
            options.concurrency,
            supervisor.zygote_pid,
        )
        if ready is not None:
            ready()
        await stop.first.wait()
        await consumer.stop_taking()  # first: nothing starts after the signal, waiting deliveries go back
        log.info(
            "warm shutdown: no new tasks; waiting up to %ss for %s running",
            settings.worker.shutdown_timeout_s,
            len(supervisor.running()),
        )
        await control.close()
        for name in list(parts.queues):
            await parts.cancel_consumer(name)
        drained = await _drain_or_cold(consumer, stop, settings.worker.shutdown_timeout_s)
        if not drained:
            log.warning(
                "terminating %s running task(s); their deliveries go back to the queue",
                supervisor.terminate_all(signal.SIGTERM),
            )
            if not await consumer.drain(settings.worker.kill_grace_s):
                supervisor.terminate_all(signal.SIGKILL)
                await consumer.drain(5.0)
        for task in background:
            task.cancel()
        events.emit(worker_event_key(options.hostname, "worker_offline"), protocol.WorkerOffline(options.hostname))
        await events.close()
        await channel.close()
        await publisher.close()
        return 0
    finally:
        await connection.close()
        engine.dispose()


async def _drain_or_cold(consumer: Any, stop: _ShutdownSignals, timeout_s: float) -> bool:
    drain = asyncio.ensure_future(consumer.drain(timeout_s))
    cold = asyncio.ensure_future(stop.second.wait())
    done, _ = await asyncio.wait({drain, cold}, return_when=asyncio.FIRST_COMPLETED)
    cold.cancel()
    if drain in done:
        return bool(drain.result())
    drain.cancel()
    log.warning("cold shutdown requested")
    return False


def _log_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s stopped: %r", task.get_coro(), task.exception())


async def _autoscale(limits: AutoscaleLimits, parts: Any) -> None:
    async def ready_messages() -> int:
        total = 0
        for queue, _ in list(parts.queues.values()):
            declared = await parts.channel.declare_queue(queue.name, passive=True)
            total += declared.declaration_result.message_count or 0
        return total

    await autoscale(limits, parts.consumer.slots, ready_messages, parts.set_prefetch)


async def _announce(parts: Any, events: Any, metrics: Any, interval_s: float) -> None:
    """Worker heartbeats on the events exchange: the scheduler and `rabbitrun status` see who is alive.
    StatsD gets the pool size at the same pace (Prometheus reads it at scrape time)."""
    from rabbitrun.names import heartbeat_key

    while True:
        events.emit(heartbeat_key(parts.hostname), parts.heartbeat())
        metrics.push_gauges()
        await asyncio.sleep(interval_s)


async def _renew_leases(supervisor: Supervisor, sessions: Any, worker: Any) -> None:
    """Renew the lease of every running attempt, in one statement per heartbeat (DESIGN rule 3).

    Self-fencing: once no renewal has succeeded for ``lease_s - heartbeat_interval_s``, the
    scheduler may soon run these attempts elsewhere, so this worker kills its task processes first
    (their deliveries go back to the queue, their attempts are released when the DB answers again).
    A task must never run on two workers at once. The fence is a watchdog of its own: a renewal
    that hangs (a network partition drops packets instead of refusing them) must not delay it.
    """
    import time

    from rabbitrun.models import attempts
    from rabbitrun.models.base import utcnow

    def renew() -> None:
        ids = [envelope.id for envelope, _ in supervisor.running()]
        with sessions() as session:
            attempts.heartbeat(session, ids, utcnow())

    fence_after_s = worker.lease_s - worker.heartbeat_interval_s
    renewed = time.monotonic()

    async def watchdog() -> None:
        while True:
            await asyncio.sleep(min(1.0, worker.heartbeat_interval_s / 2))
            unrenewed_s = time.monotonic() - renewed
            if unrenewed_s >= fence_after_s and supervisor.running():
                killed = supervisor.fence(f"its lease could not be renewed for {unrenewed_s:.0f}s")
                if killed:
                    log.error("self-fencing: killed %s task process(es) before their leases expire", killed)

    fence = asyncio.get_running_loop().create_task(watchdog())
    try:
        while True:
            await asyncio.sleep(worker.heartbeat_interval_s)
            started = time.monotonic()
            try:
                await asyncio.to_thread(renew)
                renewed = started  # the lease runs from when the statement was sent, not answered
            except Exception as exc:  # noqa: BLE001 - a DB blip must not stop the worker; next beat retries
                log.warning("lease renewal failed for %.1fs: %s", time.monotonic() - renewed, exc)
    finally:
        fence.cancel()


class _ShutdownSignals:
    """First SIGTERM/SIGINT sets ``first`` (warm), the next sets ``second`` (cold)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.first, self.second = asyncio.Event(), asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)

    def _on_signal(self) -> None:
        (self.second if self.first.is_set() else self.first).set()
