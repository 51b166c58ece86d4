"""Pools, max_active_tasks and scheduler HA with real scheduler and worker processes.

Concurrency is measured, not inferred: from the start and end times the task
instances recorded, the number of attempts running at once never exceeds the
limit, while the worker alone would have run more of them at once.
"""

from __future__ import annotations

import asyncio
import collections
from datetime import datetime
from typing import Any

import aio_pika
import pytest
from sqlalchemy import func, select

from rabbitrun import protocol
from rabbitrun.client import pools as pool_admin
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.tables import DagRun, TaskAttempt, TaskInstance
from rabbitrun.names import Names
from tests.support.env import Env
from tests.support.runs import run_dag, trigger, wait
from tests.support.services import wait_until


def _rows(env: Env, model: Any, dag_id: str) -> list[Any]:
    engine = make_engine(env.settings().database, pooled=False)
    with session_factory(engine)() as session:
        return list(session.execute(select(model).where(model.dag_id == dag_id)).scalars())


def max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """Most intervals open at one instant; one ending when another starts does not overlap it."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:  # at equal times -1 sorts first
        running += step
        peak = max(peak, running)
    return peak


def test_max_overlap_counts_open_intervals_only() -> None:
    t = [datetime(2026, 1, 1, 0, 0, s) for s in range(6)]
    assert max_overlap([(t[0], t[2]), (t[1], t[3]), (t[2], t[4])]) == 2
    assert max_overlap([(t[0], t[5]), (t[1], t[2]), (t[3], t[4])]) == 2


def _running_intervals(env: Env, dag_id: str) -> list[tuple[datetime, datetime]]:
    tis = _rows(env, TaskInstance, dag_id)
    assert tis and all(ti.state == "success" and ti.start_date and ti.end_date for ti in tis), [
        (ti.task_id, ti.state) for ti in tis
    ]
    return [(ti.start_date, ti.end_date) for ti in tis]


# a poll every 30 s: only the wake-up on each result can finish these runs within their timeouts
EVENT_DRIVEN = {"RABBITRUN__WORKER__CONCURRENCY": "6", "RABBITRUN__SCHEDULER__POLL_INTERVAL_S": "30"}


def test_pool_caps_tasks_running_at_once_and_a_freed_slot_is_taken_at_once(env: Env) -> None:
    env.vars.update(EVENT_DRIVEN)
    made = env.cli("pools", "set", "sys_pool", "2", "--description", "two at a time")
    assert made.returncode == 0, made.stderr
    env.scheduler()
    env.worker()
    run_id, final = run_dag(env, "pool_capped", timeout_s=60)  # 4 rounds of 0.5 s tasks
    assert final.state == "success", env.logs()[-4000:]
    assert max_overlap(_running_intervals(env, "pool_capped")) == 2  # never 3+, and the pool was used fully
    listing = env.cli("pools", "list")
    assert "sys_pool\t2\t0\t0\t0\ttwo at a time" in listing.stdout, listing.stdout


def test_max_active_tasks_caps_tasks_of_a_dag_across_its_runs(env: Env) -> None:
    env.vars.update(EVENT_DRIVEN)
    env.scheduler()
    env.worker()
    runs = [trigger(env, "dag_capped") for _ in range(2)]
    for run_id in runs:
        assert wait(env, "dag_capped", run_id, timeout_s=60).state == "success", env.logs()[-4000:]
    assert max_overlap(_running_intervals(env, "dag_capped")) == 2


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_task_naming_a_missing_pool_fails_with_the_reason_instead_of_waiting(env: Env) -> None:
    env.scheduler()
    env.worker()
    run_id, final = run_dag(env, "pool_capped", timeout_s=60)  # sys_pool was never created here
    assert final.state == "failed"
    reasons = {ti.reason for ti in _rows(env, TaskInstance, "pool_capped")}
    assert reasons == {
        "pool 'sys_pool' does not exist: create it with `rabbitrun pools set sys_pool SLOTS` and clear the task"
    }


def test_pools_cli_sets_resizes_lists_and_deletes_a_pool(env: Env) -> None:
    assert env.cli("pools", "set", "etl", "3", "--description", "nightly").returncode == 0
    resized = env.cli("pools", "set", "etl", "5")
    assert resized.returncode == 0 and "pool etl set: 5 slots" in resized.stdout
    listed = env.cli("pools", "list").stdout.splitlines()
    assert "default_pool\t-1\t0\t0\t0\tDefault pool" in listed and "etl\t5\t0\t0\t0\tnightly" in listed
    assert [p.pool for p in pool_admin.list_pools(env.settings())] == ["default_pool", "etl"]
    assert env.cli("pools", "delete", "etl").returncode == 0
    gone = env.cli("pools", "delete", "etl")
    assert gone.returncode == 2 and "pool etl: no such pool" in gone.stderr
    kept = env.cli("pools", "delete", "default_pool")
    assert kept.returncode == 2 and "the default pool cannot be deleted" in kept.stderr
    bad = env.cli("pools", "set", "etl", "-2")
    assert bad.returncode == 2 and "-2 is not in the range x>=-1" in bad.stderr, bad.stderr


# --- scheduler HA ---------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_second_scheduler_on_sqlite_is_refused_with_a_clear_message(env: Env) -> None:
    env.scheduler()
    second = env.cli("scheduler", "--scheduler-id", f"other-{env.prefix}", timeout_s=60)
    assert second.returncode == 2
    assert "SQLite supports one scheduler; use PostgreSQL to run several" in second.stderr, second.stderr


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_second_scheduler_with_the_same_explicit_id_is_refused(env: Env) -> None:
    env.scheduler()
    second = env.cli("scheduler", timeout_s=60)
    assert second.returncode == 2
    assert f"another scheduler with scheduler_id 'sched-{env.prefix}' is consuming" in second.stderr, second.stderr


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_schedulers_with_the_default_id_on_one_host_take_their_own_reply_queues(env: Env) -> None:
    del env.vars["RABBITRUN__SCHEDULER__SCHEDULER_ID"]
    host = env.settings().scheduler.scheduler_id
    first, second = env.scheduler(), env.scheduler()
    assert f"replies.{host}\n" in first.log_path.read_text()  # type: ignore[attr-defined]
    assert f"replies.{host}-2\n" in second.log_path.read_text()  # type: ignore[attr-defined]


async def _tap_tasks(env: Env) -> tuple[aio_pika.abc.AbstractRobustConnection, aio_pika.abc.AbstractQueue]:
    """A queue bound like the default task queue: it receives a copy of every envelope published."""
    names = Names(env.prefix)
    conn = await aio_pika.connect_robust(
        env.vars["RABBITRUN__BROKER__URL"], client_properties={"connection_name": f"test tap {env.prefix}"}
    )
    channel = await conn.channel()
    tap = await channel.declare_queue(f"{env.prefix}.test-tap", auto_delete=False)
    await tap.bind(names.tasks_exchange, routing_key="default")
    return conn, tap


async def _drain(tap: aio_pika.abc.AbstractQueue) -> list[tuple[protocol.TaskEnvelope, str | None]]:
    got = []
    while (message := await tap.get(fail=False, no_ack=True)) is not None:
        got.append((protocol.decode_envelope(message.body), message.reply_to))
    return got


@pytest.mark.timeout(600)  # 500 tasks on a busy 2-core machine
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_schedulers_share_500_tasks_and_queue_each_exactly_once(env: Env) -> None:
    env.vars["RABBITRUN__WORKER__CONCURRENCY"] = "4"
    env.scheduler()
    env.scheduler("--scheduler-id", f"sched2-{env.prefix}")
    loop = asyncio.new_event_loop()
    conn, tap = loop.run_until_complete(_tap_tasks(env))
    try:
        env.worker()
        runs = [trigger(env, "ha_wide") for _ in range(50)]
        engine = make_engine(env.settings().database, pooled=False)

        def finished() -> bool:
            with session_factory(engine)() as session:
                return session.execute(
                    select(func.count())
                    .select_from(DagRun)
                    .where(DagRun.dag_id == "ha_wide", DagRun.state.in_(("success", "failed")))
                ).scalar_one() == len(runs)

        wait_until(finished, 540, interval_s=0.5, what="50 runs of ha_wide finished")
        envelopes = loop.run_until_complete(_drain(tap))
    finally:
        loop.run_until_complete(conn.close())
        loop.close()
    tis = _rows(env, TaskInstance, "ha_wide")
    span_s = (max(ti.end_date for ti in tis) - min(ti.queued_at for ti in tis)).total_seconds()
    print(f"\n500 tasks in {span_s:.1f}s; envelopes per scheduler: {collections.Counter(r for _, r in envelopes)}")
    assert len(tis) == 500 and {(ti.state, ti.try_number) for ti in tis} == {("success", 1)}, env.logs()[-4000:]
    attempts = collections.Counter(
        (a.run_id, a.task_id, a.try_number, a.state) for a in _rows(env, TaskAttempt, "ha_wide")
    )
    assert len(attempts) == 500 and set(attempts.values()) == {1}
    assert {key[2:] for key in attempts} == {(1, "success")}
    published = collections.Counter((e.key.run_id, e.key.task_id) for e, _ in envelopes)
    assert len(published) == 500 and set(published.values()) == {1}, "a task was published twice"
    assert {e.key.try_number for e, _ in envelopes} == {1}
    by_scheduler = collections.Counter(reply_to for _, reply_to in envelopes)
    assert set(by_scheduler) == {
        Names(env.prefix).reply_queue(f"sched-{env.prefix}"),
        Names(env.prefix).reply_queue(f"sched2-{env.prefix}"),
    }, by_scheduler
