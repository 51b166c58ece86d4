"""Operating rabbitrun like a RabbitMQ shop: inspect/control over AMQP, events, live logs,
status, health, metrics and names in the management UI. Real workers, real broker."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

import aio_pika
import pytest

from rabbitrun import client
from rabbitrun.broker.management import ManagementClient
from tests.support.env import Env
from tests.support.runs import run_dag, states, trigger, wait
from tests.support.services import wait_until


def hostnames(env: Env) -> tuple[str, str]:
    return f"w1-{env.prefix}@test", f"w2-{env.prefix}@test"


def start_two_workers(env: Env, *extra: str) -> tuple[str, str]:
    w1, w2 = hostnames(env)
    for host in (w1, w2):
        env.vars["RABBITRUN__WORKER__HOSTNAME"] = host
        env.worker(*extra)
    return w1, w2


def ask(env: Env, *args: str) -> list[dict[str, Any]]:
    out = env.cli(*args, "--json", "--timeout", "2")
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_inspect_and_control_two_workers_with_destination(env: Env) -> None:
    env.scheduler()
    w1, w2 = start_two_workers(env)
    assert sorted(r["hostname"] for r in ask(env, "inspect", "ping")) == sorted([w1, w2])
    only = ask(env, "inspect", "ping", "--destination", w2)
    assert [(r["hostname"], r["data"]) for r in only] == [(w2, "pong")]
    stats = ask(env, "inspect", "stats", "-d", w1)[0]["data"]
    assert {"tasks", "concurrency", "prefetch", "processes", "uptime_s", "broker", "rss_bytes"} <= set(stats)
    assert stats["tasks"] == {}  # nothing ran yet; counts by outcome appear below
    assert (stats["concurrency"] == 2 and stats["rss_bytes"] > 0 and "***" in stats["broker"]) or "guest" not in stats[
        "broker"
    ]
    run_id = trigger(env, "long_running", sleep_s=6)
    wait_until(
        lambda: (
            states(env, "long_running", run_id).get("long_task")
            and states(env, "long_running", run_id)["long_task"].state == "running"
        ),
        30,
        what="running",
    )
    active = [t for r in ask(env, "inspect", "active") for t in r["data"]]
    assert [(t["task_id"], t["run_id"]) for t in active] == [("long_task", run_id)] and active[0]["pid"] > 0
    queues = ask(env, "inspect", "active-queues", "-d", w1)[0]["data"]
    assert [q["name"] for q in queues] == ["default"]
    assert "long_running" in ask(env, "inspect", "registered", "-d", w1)[0]["data"]
    grown = ask(env, "control", "pool-grow", "3", "-d", w1)[0]["data"]
    assert grown == 5 and ask(env, "inspect", "stats", "-d", w1)[0]["data"]["prefetch"] == 5
    assert ask(env, "control", "pool-shrink", "4", "-d", w1)[0]["data"] == 1
    nobody = env.cli("inspect", "ping", "--destination", "ghost@nowhere", "--timeout", "1")
    assert nobody.returncode == 1 and "no worker 'ghost@nowhere' answered within 1s" in nobody.stderr
    stopped = env.cli("control", "shutdown", "-d", w2)
    assert stopped.returncode == 0
    wait_until(lambda: env.children[2].poll() is not None, 30, what="w2 exits")
    assert env.children[2].returncode == 0
    assert wait(env, "long_running", run_id, 60).state == "success"
    before = ask(env, "inspect", "stats", "-d", w1)[0]["data"]["tasks"].get("success", 0)
    assert run_dag(env, "chain3")[1].state == "success"  # only w1 is left to run it
    assert ask(env, "inspect", "stats", "-d", w1)[0]["data"]["tasks"]["success"] == before + 3


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_add_and_cancel_consumer_change_what_a_worker_consumes(env: Env, vhost: str) -> None:
    env.scheduler()
    w1, _ = start_two_workers(env)
    api = ManagementClient("http://guest:guest@127.0.0.1:15672/")

    def tags() -> set[str]:
        return {c["consumer_tag"] for c in api.consumers(vhost) if c["queue"]["name"].startswith(env.prefix)}

    assert ask(env, "control", "add-consumer", "high_priority", "-d", w1)[0]["data"] == ["default", "high_priority"]
    wait_until(lambda: f"rabbitrun-worker {w1} high_priority" in tags(), 15, interval_s=0.5, what="consumer in API")
    _, final = run_dag(env, "stuck_queue")  # its task goes to high_priority: now it runs
    assert final.state == "success"
    assert ask(env, "control", "cancel-consumer", "high_priority", "-d", w1)[0]["data"] == ["default"]
    wait_until(lambda: f"rabbitrun-worker {w1} high_priority" not in tags(), 15, interval_s=0.5, what="cancelled")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_events_tail_sees_the_lifecycle_in_order_and_follow_sees_live_lines(env: Env) -> None:
    env.scheduler()
    env.worker()
    tail = subprocess.Popen(
        [sys.executable, "-m", "rabbitrun", "events", "--dag", "chain3", "--json", "--duration", "20"],
        env=env.vars,
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(2)
    run_id, final = run_dag(env, "chain3")
    assert final.state == "success"
    tail.terminate()
    out, _ = tail.communicate(timeout=20)
    seen = [(e["task_id"], e["kind"]) for e in map(json.loads, out.splitlines()) if e.get("run_id") == run_id]
    for task_id in ("first", "second", "third"):
        assert [k for t, k in seen if t == task_id] == ["received", "started", "succeeded"]
    assert seen.index(("first", "succeeded")) < seen.index(("second", "received"))

    run_id = trigger(env, "chatty", ticks=8)
    wait_until(
        lambda: states(env, "chatty", run_id).get("talk") and states(env, "chatty", run_id)["talk"].state == "running",
        30,
        what="chatty running",
    )
    follow = subprocess.Popen(
        [sys.executable, "-m", "rabbitrun", "tasks", "logs", "chatty", "talk", run_id, "--follow"],
        env=env.vars,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert follow.stdout is not None
    line = ""
    while "tick 5" not in line:
        line = follow.stdout.readline()
        assert line, "follow ended before tick 5"
    assert states(env, "chatty", run_id)["talk"].state == "running"  # seen live, before the end
    rest, err = follow.communicate(timeout=30)
    assert "tick 7" in rest and "attempt ended: succeeded" in err

    # a machine without the file (another log folder) gets the finished attempt's log from the worker
    env.vars["RABBITRUN__LOGGING__BASE_LOG_FOLDER"] = str(env.home / "elsewhere")
    remote = env.cli("tasks", "logs", "chatty", "talk", run_id)
    assert remote.returncode == 0, remote.stderr
    assert "fetched from a live worker" in remote.stderr and "tick 7" in remote.stdout


def _port_of(proc: Any) -> int:
    found = wait_until(
        lambda: re.search(r"metrics on http://[^:]+:(\d+)/metrics", proc.log_path.read_text()), 10, what="metrics port"
    )
    return int(found.group(1))


def _scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def _sample(port: int, name: str, labels: str = "") -> float | None:
    """One sample's value from the endpoint (None when absent); ``labels`` as Prometheus prints them."""
    found = re.search(
        rf"^{re.escape(name + (('{' + labels + '}') if labels else ''))} (\S+)$", _scrape(port), re.MULTILINE
    )
    return float(found.group(1)) if found else None


def _take_without_ack_and_drop(env: Env, queue: str) -> bool:
    """Receive one message from a task queue and close the connection without acking it: the broker
    requeues it flagged redelivered (what a worker that died mid-task leaves behind)."""
    from rabbitrun.names import Names

    async def take() -> bool:
        conn = await aio_pika.connect(env.vars["RABBITRUN__BROKER__URL"])
        async with conn:
            channel = await conn.channel()
            q = await channel.get_queue(Names(env.prefix).task_queue(queue), ensure=False)
            return await q.get(no_ack=False, fail=False) is not None

    return asyncio.run(take())


def _publish_raw(env: Env, queue: str, body: bytes) -> None:
    from rabbitrun.names import Names

    async def publish() -> None:
        conn = await aio_pika.connect(env.vars["RABBITRUN__BROKER__URL"])
        async with conn:
            channel = await conn.channel()
            await channel.default_exchange.publish(
                aio_pika.Message(body), routing_key=Names(env.prefix).task_queue(queue)
            )

    asyncio.run(publish())


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_metrics_move_after_tasks_run(env: Env) -> None:
    env.vars["RABBITRUN__METRICS__WORKER_PORT"] = "0"
    env.vars["RABBITRUN__METRICS__SCHEDULER_PORT"] = "0"
    sport, wport = _port_of(env.scheduler()), _port_of(env.worker())  # the worker consumes "default" only
    _, final = run_dag(env, "chain3")
    assert final.state == "success"
    assert _sample(wport, "rabbitrun_task_outcomes_total", 'dag_id="chain3",state="success",task_id="first"') == 1.0
    assert _sample(wport, "rabbitrun_task_duration_seconds_count", 'dag_id="chain3",task_id="first"') == 1.0
    assert _sample(wport, "rabbitrun_task_queue_lag_seconds_count", 'queue="default"') == 3.0
    assert (_sample(sport, "rabbitrun_publish_confirms_total") or 0) >= 3
    assert _sample(wport, "rabbitrun_redeliveries_total") == 0.0

    _publish_raw(env, "default", b"\xc1 not msgpack")
    wait_until(lambda: _sample(wport, "rabbitrun_dead_lettered_total") == 1.0, 15, what="dead-lettered counted")

    run_id = trigger(env, "long_running", sleep_s=5)
    wait_until(lambda: _sample(wport, "rabbitrun_tasks_running") == 1.0, 30, what="worker running gauge")
    wait_until(lambda: _sample(sport, "rabbitrun_tasks_running") == 1.0, 15, what="scheduler running gauge")
    assert wait(env, "long_running", run_id).state == "success"
    assert _sample(wport, "rabbitrun_tasks_running") == 0.0
    wait_until(lambda: _sample(sport, "rabbitrun_tasks_running") == 0.0, 15, what="scheduler running gauge back")

    # a task waits in high_priority, which nobody consumes yet: the queued gauge shows it; then its
    # envelope is received and dropped unacked (as by a worker that died), and the worker, told to
    # consume high_priority, gets it flagged redelivered
    run_id = trigger(env, "stuck_queue")
    wait_until(lambda: _sample(sport, "rabbitrun_tasks_queued") == 1.0, 15, what="scheduler queued gauge")
    wait_until(lambda: _take_without_ack_and_drop(env, "high_priority"), 15, interval_s=0.2, what="the envelope")
    w1 = env.vars["RABBITRUN__WORKER__HOSTNAME"]
    assert ask(env, "control", "add-consumer", "high_priority", "-d", w1)[0]["data"] == ["default", "high_priority"]
    assert wait(env, "stuck_queue", run_id).state == "success"
    assert _sample(wport, "rabbitrun_redeliveries_total") == 1.0
    wait_until(lambda: _sample(sport, "rabbitrun_tasks_queued") == 0.0, 15, what="queued gauge back")

    _, final = run_dag(env, "unbound_queue")  # its queue is bound to nothing: the scheduler fails it
    assert final.state == "failed"
    assert _sample(sport, "rabbitrun_publish_returns_total") == 1.0
    assert (
        _sample(
            sport,
            "rabbitrun_scheduler_outcomes_total",
            'cause="unroutable",dag_id="unbound_queue",state="failed",task_id="nowhere"',
        )
        == 1.0
    )

    assert _sample(wport, "rabbitrun_worker_pool_size") == 2.0
    assert ask(env, "control", "pool-grow", "3", "-d", w1)[0]["data"] == 5
    assert _sample(wport, "rabbitrun_worker_pool_size") == 5.0
    assert ask(env, "control", "pool-shrink", "4", "-d", w1)[0]["data"] == 1
    assert _sample(wport, "rabbitrun_worker_pool_size") == 1.0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_status_health_and_management_ui_names(env: Env, vhost: str) -> None:
    env.scheduler()
    worker_host = env.vars["RABBITRUN__WORKER__HOSTNAME"]
    env.worker()
    run_dag(env, "chain3")

    def current_status() -> dict[str, Any] | None:
        out = env.cli("status", "--json")
        assert out.returncode == 0, out.stderr
        status = json.loads(out.stdout)
        default = next(q for q in status["queues"] if q["name"].endswith("rabbitrun.q.default"))
        return status if default["consumers"] == 1 else None  # management stats refresh every ~5 s

    status = wait_until(current_status, 30, interval_s=1, what="status showing the consumer")
    assert status["management_api"] == "ok"
    assert worker_host in status["workers"]
    assert status["task_instances"]["success"] == 3
    env.vars["RABBITRUN__BROKER__MANAGEMENT_URL"] = "http://guest:guest@127.0.0.1:1/"
    reduced = env.cli("status")
    assert reduced.returncode == 0, reduced.stderr
    assert "management API: unavailable" in reduced.stdout and "success 3" in reduced.stdout
    assert "rabbitrun.q.default" in reduced.stdout
    assert env.cli("health").returncode == 0 and env.cli("broker", "check").returncode == 0
    env.vars["RABBITRUN__BROKER__PREFIX"] = "never-declared"
    bad = env.cli("broker", "check")
    assert bad.returncode == 3 and "never-declared.rabbitrun.tasks is missing" in bad.stderr

    api = ManagementClient("http://guest:guest@127.0.0.1:15672/")
    names = {
        c.get("client_properties", {}).get("connection_name") for c in api.connections() if c.get("vhost") == vhost
    }
    assert f"rabbitrun-worker {worker_host}" in names
    assert f"rabbitrun-scheduler sched-{env.prefix}" in names
    tags = {c["consumer_tag"] for c in api.consumers(vhost)}
    assert f"rabbitrun-worker {worker_host} default" in tags
    assert f"rabbitrun-scheduler sched-{env.prefix} replies" in tags


def _running_try(env: Env, dag_id: str, task_id: str, run_id: str, try_number: int) -> bool:
    row = states(env, dag_id, run_id).get(task_id)
    return bool(row and row.state == "running" and row.try_number == try_number)


def _follow(env: Env, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rabbitrun", "tasks", "logs", *args, "--follow"],
        env=env.vars,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_follow_keeps_repeated_and_last_lines_respects_try_and_returns_for_ended_attempts(env: Env) -> None:
    env.scheduler()
    env.worker()
    run_id = trigger(env, "burst", fail_first=True, repeats=20, every_s=0.5)
    wait_until(lambda: _running_try(env, "burst", "talk_then_burst", run_id, 2), 30, what="try 2 running")
    time.sleep(1)  # some identical lines are in the file before following starts
    latest = _follow(env, "burst", "talk_then_burst", run_id)
    first_try = _follow(env, "burst", "talk_then_burst", run_id, "--try", "1")
    out1, err1 = first_try.communicate(timeout=30)  # try 1 ended long ago: prints its file and returns
    assert "try one marker" in out1 and "same line" not in out1
    assert "attempt ended: up_for_retry" in err1 or "attempt ended: ended" in err1, err1
    out, err = latest.communicate(timeout=60)
    assert "attempt ended: succeeded" in err, err
    assert [line.endswith("same line") for line in out.splitlines()].count(True) == 20
    lasts = [line.rsplit(" ", 1)[1] for line in out.splitlines() if " last " in line]
    assert lasts == [str(i) for i in range(40)]
    assert "try one marker" not in out
    assert wait(env, "burst", run_id).state == "success"

    started = time.monotonic()
    again = env.cli("tasks", "logs", "burst", "talk_then_burst", run_id, "--follow", timeout_s=30)
    assert again.returncode == 0 and time.monotonic() - started < 15  # ended: no waiting for live lines
    assert "last 39" in again.stdout and "attempt ended: success" in again.stderr


def _tail(env: Env, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rabbitrun", "events", "--json", "--duration", "120", *args],
        env=env.vars,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _events_of(tail: subprocess.Popen[str]) -> list[dict[str, Any]]:
    tail.terminate()
    out, _ = tail.communicate(timeout=20)
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_events_of_every_outcome_and_the_dag_filter(env: Env) -> None:
    env.vars["RABBITRUN__WORKER__SHUTDOWN_TIMEOUT_S"] = "1"
    env.scheduler()
    worker = env.worker()
    everything, only_flaky = _tail(env), _tail(env, "--dag", "flaky")
    time.sleep(3)  # both tails bound to the events exchange
    runs = {dag: trigger(env, dag) for dag in ("failing", "flaky", "timeouts")}
    for dag, run_id in runs.items():
        wait(env, dag, run_id)
    long_run = trigger(env, "long_running", sleep_s=30)
    wait_until(
        lambda: (
            states(env, "long_running", long_run).get("long_task")
            and states(env, "long_running", long_run)["long_task"].state == "running"
        ),
        30,
        what="long task running",
    )
    worker.send_signal(signal.SIGTERM)  # shutdown timeout 1 s: the task is terminated and handed back
    worker.wait(timeout=30)
    seen = _events_of(everything)

    def kinds(dag: str, task_id: str) -> list[str]:
        return [e["kind"] for e in seen if e.get("dag_id") == dag and e.get("task_id") == task_id]

    assert kinds("failing", "boom") == ["received", "started", "failed"]
    failed = next(e for e in seen if e["kind"] == "failed" and e["task_id"] == "boom")
    assert failed["routing_key"] == "task.failing.boom.failed" and "boom on purpose" in failed["error"]
    assert kinds("flaky", "fail_twice") == ["received", "started", "retried"] * 2 + ["received", "started", "succeeded"]
    for task_id in ("soft", "hard"):
        assert kinds("timeouts", task_id) == ["received", "started", "timed_out", "failed"], task_id
    limits = {e["task_id"]: e["limit"] for e in seen if e["kind"] == "timed_out"}
    assert limits == {"soft": "soft", "hard": "hard"}
    assert kinds("long_running", "long_task") == ["received", "started", "revoked"]
    assert any(e["routing_key"].endswith(".worker_offline") for e in seen)

    flaky_only = [e for e in _events_of(only_flaky) if e["routing_key"].startswith("task.")]  # + worker_offline
    assert [e["kind"] for e in flaky_only] == kinds("flaky", "fail_twice")
    assert {e["dag_id"] for e in flaky_only} == {"flaky"}  # nothing of failing, timeouts, long_running


def _running_count(env: Env, dag_id: str, run_id: str) -> int:
    return sum(1 for r in states(env, dag_id, run_id).values() if r.state == "running")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_reserved_human_output_worker_flags_and_pool_shrink_limits_what_runs(env: Env) -> None:
    env.scheduler()
    nobody = env.cli("inspect", "ping", "--timeout", "1")
    assert nobody.returncode == 1 and nobody.stderr.strip() == "Error: no worker answered within 1s"
    w1, w2 = hostnames(env)
    env.worker()  # w1: settings from the environment, concurrency 2
    env.worker("--queues", "high_priority", "--concurrency", "3", "--hostname", w2)
    stats = {r["hostname"]: r["data"] for r in ask(env, "inspect", "stats")}
    assert (stats[w2]["concurrency"], stats[w2]["prefetch"]) == (3, 3)  # prefetch = concurrency at startup
    assert (stats[w1]["concurrency"], stats[w1]["prefetch"]) == (2, 2)
    assert [q["name"] for q in ask(env, "inspect", "active-queues", "-d", w2)[0]["data"]] == ["high_priority"]

    human = env.cli("inspect", "ping", "--timeout", "2")
    assert human.returncode == 0, human.stderr
    assert human.stdout.splitlines() == [line for host in sorted([w1, w2]) for line in (f"-> {host}: OK", "    pong")]

    run_id = trigger(env, "sleepers", sleep_s=5)  # ten tasks on default: only w1 takes them
    wait_until(lambda: _running_count(env, "sleepers", run_id) == 2, 30, what="two sleepers running")
    assert ask(env, "control", "pool-shrink", "1", "-d", w1)[0]["data"] == 1
    # the new consumer's prefetch of 1 brings one more delivery, which waits: both slots are still busy
    reserved = wait_until(lambda: ask(env, "inspect", "reserved", "-d", w1)[0]["data"], 15, what="a reserved one")
    assert len(reserved) == 1 and reserved[0]["dag_id"] == "sleepers" and reserved[0]["run_id"] == run_id
    text = env.cli("inspect", "reserved", "-d", w1, "--timeout", "2").stdout
    assert text.startswith(f"-> {w1}: OK\n") and reserved[0]["task_id"] in text
    stats = ask(env, "inspect", "stats", "-d", w1)[0]["data"]
    assert (stats["concurrency"], stats["prefetch"]) == (1, 1)
    # once the two running ones end, the shrunk pool runs one at a time
    wait_until(lambda: _running_count(env, "sleepers", run_id) <= 1, 30, what="the first two finished")
    counts = []
    for _ in range(60):  # ~12 s: two or three sleepers of 5 s, one after the other
        counts.append(_running_count(env, "sleepers", run_id))
        time.sleep(0.2)
    assert max(counts) == 1 and client.run_progress(env.settings(), "sleepers", run_id).done >= 3
    assert ask(env, "control", "pool-grow", "4", "-d", w1)[0]["data"] == 5
    assert wait(env, "sleepers", run_id, 90).state == "success"
