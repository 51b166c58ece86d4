"""Metrics of the scheduler and the worker: Prometheus on their own registry, and StatsD.

The names follow Airflow's where one exists (``rabbitrun_task_duration_seconds`` for
``task_instance_duration``). The Prometheus endpoint starts only when ``[metrics]
scheduler_port``/``worker_port`` is set (0: any free port, reported in the process log).
With ``[metrics] statsd_on`` every update is also sent to StatsD under the same name,
``rabbitrun_`` replaced by ``statsd_prefix.`` and label values appended as dotted segments
(``rabbitrun.task_outcomes_total.etl.extract.success``), so a shop that runs Airflow's
StatsD dashboards keeps them; durations go as StatsD timers in milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from rabbitrun.keys import TaskInstanceKey

if TYPE_CHECKING:
    from rabbitrun.settings import MetricsSettings

_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]+")  # ':' '|' '@' '.' would break or nest a StatsD name


class Metric:
    """One Prometheus metric (or labelled child) and its StatsD twin, updated together."""

    def __init__(self, prom: Any, stat: str, statsd: Any, kind: str, gauges: dict[str, float]) -> None:
        self._prom, self._stat, self._statsd, self._kind, self._gauges = prom, stat, statsd, kind, gauges
        self._read: Callable[[], float] | None = None  # a gauge read at scrape time (set_function)

    def labels(self, *values: str) -> Metric:
        stat = ".".join([self._stat, *(_UNSAFE.sub("_", str(v)) for v in values)])
        return Metric(self._prom.labels(*values), stat, self._statsd, self._kind, self._gauges)

    def inc(self, amount: float = 1) -> None:
        self._prom.inc(amount)
        if self._kind == "gauge":
            self._send_gauge(self._gauges.get(self._stat, 0.0) + amount)
        elif self._statsd is not None:
            self._statsd.incr(self._stat, amount)

    def dec(self, amount: float = 1) -> None:
        self._prom.dec(amount)
        self._send_gauge(self._gauges.get(self._stat, 0.0) - amount)

    def set(self, value: float) -> None:
        self._prom.set(value)
        self._send_gauge(value)

    def observe(self, seconds: float) -> None:
        self._prom.observe(seconds)
        if self._statsd is not None:
            self._statsd.timing(self._stat, seconds * 1000.0)

    def set_function(self, read: Callable[[], float]) -> None:
        """Prometheus reads it at scrape time; StatsD gets it at each :meth:`Metrics.push_gauges`."""
        self._prom.set_function(read)
        self._read = read

    def push(self) -> None:
        if self._read is not None:
            self._send_gauge(self._read())

    def _send_gauge(self, value: float) -> None:
        # absolute values, never StatsD deltas: a restarted StatsD server would keep a wrong base
        self._gauges[self._stat] = value
        if self._statsd is not None:
            self._statsd.gauge(self._stat, int(value) if float(value).is_integer() else value)


class Metrics:
    """The metrics one process (scheduler or worker) updates."""

    def __init__(self, settings: MetricsSettings | None = None) -> None:
        self.registry = CollectorRegistry()
        self._statsd = _statsd_client(settings) if settings is not None and settings.statsd_on else None
        self._prefix = settings.statsd_prefix if settings is not None else "rabbitrun"
        self._gauges: dict[str, float] = {}
        self.tasks_queued = self._gauge("rabbitrun_tasks_queued", "Task instances in state queued")
        self.tasks_running = self._gauge("rabbitrun_tasks_running", "Task instances running (here, on a worker)")
        self.task_outcomes = self._counter(
            "rabbitrun_task_outcomes_total", "Finished attempts by outcome", ["dag_id", "task_id", "state"]
        )
        self.task_duration = self._histogram(
            "rabbitrun_task_duration_seconds", "Attempt duration", ["dag_id", "task_id"]
        )
        self.queue_lag = self._histogram("rabbitrun_task_queue_lag_seconds", "Enqueued -> started", ["queue"])
        self.publish_confirms = self._counter("rabbitrun_publish_confirms_total", "Envelopes confirmed by the broker")
        self.publish_nacks = self._counter("rabbitrun_publish_nacks_total", "Envelopes nacked or not confirmed")
        self.publish_returns = self._counter("rabbitrun_publish_returns_total", "Envelopes returned as unroutable")
        self.redeliveries = self._counter("rabbitrun_redeliveries_total", "Deliveries flagged redelivered")
        self.dead_lettered = self._counter("rabbitrun_dead_lettered_total", "Messages sent to the dead-letter exchange")
        self.scheduler_outcomes = self._counter(
            "rabbitrun_scheduler_outcomes_total",
            "Attempts the scheduler ended itself, by cause (zombie, stuck_in_queued, unroutable)",
            ["dag_id", "task_id", "state", "cause"],
        )
        self.pool_size = self._gauge("rabbitrun_worker_pool_size", "Task process slots of this worker")

    def count_scheduler_outcome(self, key: TaskInstanceKey, state: str, cause: str) -> None:
        """An OutcomeHook of :mod:`rabbitrun.scheduler.recovery`."""
        self.scheduler_outcomes.labels(key.dag_id, key.task_id, state, cause).inc()

    def push_gauges(self) -> None:
        """Send the gauges read from a function (pool size) to StatsD; called on each heartbeat."""
        self.pool_size.push()

    def serve(self, port: int, host: str = "0.0.0.0") -> int:
        """Start the HTTP endpoint; returns the port it listens on."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)

    def _metric(self, prom: Any, name: str, kind: str) -> Metric:
        stat = f"{self._prefix}.{name.removeprefix('rabbitrun_')}" if self._prefix else name.removeprefix("rabbitrun_")
        return Metric(prom, stat, self._statsd, kind, self._gauges)

    def _gauge(self, name: str, doc: str) -> Metric:
        return self._metric(Gauge(name, doc, registry=self.registry), name, "gauge")

    def _counter(self, name: str, doc: str, labels: list[str] | None = None) -> Metric:
        return self._metric(Counter(name, doc, labels or [], registry=self.registry), name, "counter")

    def _histogram(self, name: str, doc: str, labels: list[str]) -> Metric:
        prom = Histogram(name, doc, labels, buckets=_BUCKETS_S, registry=self.registry)
        return self._metric(prom, name, "timer")


def _statsd_client(settings: MetricsSettings) -> Any:
    """A UDP client: fire and forget, so a missing StatsD server never slows or fails a task."""
    from statsd import StatsClient

    return StatsClient(settings.statsd_host, settings.statsd_port, prefix=None)
