"""StatsD: the metrics of the Prometheus endpoint, sent over UDP under the same names, from a real
scheduler and worker to a real UDP socket standing in for the StatsD server."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from rabbitrun.metrics import Metrics
from rabbitrun.settings import MetricsSettings
from tests.support.env import Env
from tests.support.runs import run_dag


class StatsdServer:
    """Collects the datagrams sent to it: what a StatsD daemon would aggregate."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []

    def collect_until(self, wanted: set[str], timeout_s: float) -> list[str]:
        """Read until every wanted line prefix was seen (or the time is up); returns all lines."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not all(any(l.startswith(w) for l in self.lines) for w in wanted):
            try:
                self.lines.extend(self.sock.recv(65535).decode().splitlines())
            except TimeoutError:
                continue
        return self.lines


@pytest.fixture
def statsd() -> Iterator[StatsdServer]:
    server = StatsdServer()
    yield server
    server.sock.close()


def test_each_kind_of_update_is_one_statsd_line_with_labels_as_segments(statsd: StatsdServer) -> None:
    metrics = Metrics(MetricsSettings(statsd_on=True, statsd_port=statsd.port, statsd_prefix="ops.rr"))
    metrics.task_outcomes.labels("etl", "load.v2", "success").inc()
    metrics.task_duration.labels("etl", "load").observe(0.25)
    metrics.tasks_running.inc()
    metrics.tasks_running.inc()
    metrics.tasks_running.dec()
    metrics.tasks_queued.set(7)
    metrics.pool_size.set_function(lambda: 16)
    metrics.push_gauges()
    lines = statsd.collect_until({"ops.rr.worker_pool_size:"}, 5)
    assert lines == [
        "ops.rr.task_outcomes_total.etl.load_v2.success:1|c",  # a dot in a value would nest the name
        "ops.rr.task_duration_seconds.etl.load:250.000000|ms",
        "ops.rr.tasks_running:1|g",
        "ops.rr.tasks_running:2|g",
        "ops.rr.tasks_running:1|g",  # absolute values
        "ops.rr.tasks_queued:7|g",
        "ops.rr.worker_pool_size:16|g",
    ]
    # Prometheus saw the same updates
    assert metrics.registry.get_sample_value("rabbitrun_tasks_running") == 1.0
    assert (
        metrics.registry.get_sample_value(
            "rabbitrun_task_outcomes_total", {"dag_id": "etl", "task_id": "load.v2", "state": "success"}
        )
        == 1.0
    )


def test_statsd_off_sends_nothing(statsd: StatsdServer) -> None:
    metrics = Metrics(MetricsSettings(statsd_on=False, statsd_port=statsd.port))
    metrics.task_outcomes.labels("etl", "load", "success").inc()
    assert statsd.collect_until({"never"}, 0.5) == []
    assert (
        metrics.registry.get_sample_value(
            "rabbitrun_task_outcomes_total", {"dag_id": "etl", "task_id": "load", "state": "success"}
        )
        == 1.0
    )


def test_scheduler_and_worker_send_task_metrics_to_statsd(env: Env, statsd: StatsdServer) -> None:
    env.vars.update(
        {
            "RABBITRUN__METRICS__STATSD_ON": "true",
            "RABBITRUN__METRICS__STATSD_PORT": str(statsd.port),
            "RABBITRUN__WORKER__HEARTBEAT_INTERVAL_S": "0.5",
        }
    )
    env.scheduler()
    env.worker("--concurrency", "2")
    _, final = run_dag(env, "chain3")
    assert final.state == "success"
    wanted = {f"rabbitrun.task_outcomes_total.chain3.{t}.success:1|c" for t in ("first", "second", "third")}
    wanted |= {
        "rabbitrun.task_duration_seconds.chain3.first:",
        "rabbitrun.task_queue_lag_seconds.default:",
        "rabbitrun.publish_confirms_total:1|c",
        "rabbitrun.worker_pool_size:2|g",
    }
    lines = statsd.collect_until(wanted, 15)
    missing = {w for w in wanted if not any(line.startswith(w) for line in lines)}
    assert not missing, f"not sent to StatsD: {missing}; got {lines}"
    outcomes = [line for line in lines if line.startswith("rabbitrun.task_outcomes_total.")]
    assert len(outcomes) == 3  # one per attempt, none doubled
