"""Prometheus metrics of the scheduler and the worker, on their own registry.

The names follow Airflow's where one exists (``rabbitrun_task_duration_seconds`` for
``task_instance_duration``). The endpoint starts only when ``[metrics] port`` is set
(or 0 for "any free port", reported in the process log).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from rabbitrun.keys import TaskInstanceKey

_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.tasks_queued = Gauge("rabbitrun_tasks_queued", "Task instances in state queued", registry=r)
        self.tasks_running = Gauge("rabbitrun_tasks_running", "Task instances running (here, on a worker)",
                                   registry=r)
        self.task_outcomes = Counter("rabbitrun_task_outcomes_total", "Finished attempts by outcome",
                                     ["dag_id", "task_id", "state"], registry=r)
        self.task_duration = Histogram("rabbitrun_task_duration_seconds", "Attempt duration",
                                       ["dag_id", "task_id"], buckets=_BUCKETS_S, registry=r)
        self.queue_lag = Histogram("rabbitrun_task_queue_lag_seconds", "Enqueued -> started",
                                   ["queue"], buckets=_BUCKETS_S, registry=r)
        self.publish_confirms = Counter("rabbitrun_publish_confirms_total", "Envelopes confirmed by the broker",
                                        registry=r)
        self.publish_nacks = Counter("rabbitrun_publish_nacks_total", "Envelopes nacked or not confirmed",
                                     registry=r)
        self.publish_returns = Counter("rabbitrun_publish_returns_total", "Envelopes returned as unroutable",
                                       registry=r)
        self.redeliveries = Counter("rabbitrun_redeliveries_total", "Deliveries flagged redelivered", registry=r)
        self.dead_lettered = Counter("rabbitrun_dead_lettered_total", "Messages sent to the dead-letter exchange",
                                     registry=r)
        self.scheduler_outcomes = Counter(
            "rabbitrun_scheduler_outcomes_total", "Attempts the scheduler ended itself, by cause "
            "(zombie, stuck_in_queued, unroutable)", ["dag_id", "task_id", "state", "cause"], registry=r)
        self.pool_size = Gauge("rabbitrun_worker_pool_size", "Task process slots of this worker", registry=r)

    def count_scheduler_outcome(self, key: TaskInstanceKey, state: str, cause: str) -> None:
        """An OutcomeHook of :mod:`rabbitrun.scheduling`."""
        self.scheduler_outcomes.labels(key.dag_id, key.task_id, state, cause).inc()

    def serve(self, port: int, host: str = "0.0.0.0") -> int:
        """Start the HTTP endpoint; returns the port it listens on."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)
