"""Sensors and DAG callbacks with real scheduler and worker processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

from sqlalchemy import select

from rabbitrun import client
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.tables import DagRun, TaskReschedule
from tests.support.env import Env
from tests.support.runs import states, trigger, wait
from tests.support.services import wait_until


def _state(env: Env, dag_id: str, run_id: str, task_id: str) -> str | None:
    row = states(env, dag_id, run_id).get(task_id)
    return row.state if row else None


def _reschedules(env: Env, dag_id: str, run_id: str, task_id: str) -> list[TaskReschedule]:
    with session_factory(make_engine(env.settings().database, pooled=False))() as session:
        return list(
            session.execute(
                select(TaskReschedule)
                .where(
                    TaskReschedule.dag_id == dag_id, TaskReschedule.run_id == run_id, TaskReschedule.task_id == task_id
                )
                .order_by(TaskReschedule.id)
            ).scalars()
        )


def test_reschedule_sensor_frees_its_slot_for_another_task_and_succeeds_when_the_file_appears(env: Env) -> None:
    env.scheduler()
    env.worker("--concurrency", "1")
    run_id = trigger(env, "sensor_frees_slot")
    wait_until(
        lambda: _state(env, "sensor_frees_slot", run_id, "other") == "success",
        60,
        what="other task done while the sensor waits",
    )
    assert states(env, "sensor_frees_slot", run_id)["wait_for_flag"].state != "success"
    (env.home.parent / "out" / "flag-1").write_text("here")
    final = wait(env, "sensor_frees_slot", run_id)
    assert final.state == "success", env.logs()
    rows = states(env, "sensor_frees_slot", run_id)
    sensor, other = rows["wait_for_flag"], rows["other"]
    assert (sensor.state, sensor.try_number) == ("success", 1)  # reschedules keep the try
    pokes = _reschedules(env, "sensor_frees_slot", run_id, "wait_for_flag")
    assert pokes and all(p.try_number == 1 for p in pokes)
    # on a one-slot worker, `other` ran between two pokes: after one ended and before the next began
    poke_spans = [(p.start_date, p.end_date) for p in pokes] + [(sensor.start_date, sensor.end_date)]
    assert other.start_date is not None and other.end_date is not None
    assert any(a[1] <= other.start_date and other.end_date <= b[0] for a, b in zip(poke_spans, poke_spans[1:])), (
        poke_spans,
        other.start_date,
        other.end_date,
    )
    log = client.read_log(env.settings(), "sensor_frees_slot", "wait_for_flag", run_id, try_number=1)[1]
    assert "Rescheduling task" in log and "Found file" in log


def test_sensor_timeout_fails_without_retries_soft_fail_skips_and_timeout_spans_reschedules(env: Env) -> None:
    env.scheduler()
    env.worker()
    run_id = trigger(env, "sensor_timeouts")
    final = wait(env, "sensor_timeouts", run_id)
    rows = states(env, "sensor_timeouts", run_id)
    assert final.state == "failed"
    assert (rows["hard"].state, rows["hard"].try_number) == ("failed", 1), env.logs()
    assert "timed out" in (rows["hard"].reason or "")
    # the last attempt alone was far shorter than the timeout: it counted from the first poke, rescheduled before
    first_poke = _reschedules(env, "sensor_timeouts", run_id, "hard")[0]
    last = rows["hard"]
    assert last.duration is not None and last.duration < 3 and last.start_date > first_poke.end_date
    assert last.end_date is not None and (last.end_date - first_poke.start_date).total_seconds() > 3
    assert rows["soft"].state == "skipped" and rows["after_soft"].state == "skipped"
    assert (rows["poking"].state, rows["poking"].try_number) == ("failed", 1)
    assert not _reschedules(env, "sensor_timeouts", run_id, "poking")  # poke mode loops in its process


def test_external_task_sensor_waits_for_another_dags_task(env: Env) -> None:
    env.scheduler()
    env.worker()
    upstream = trigger(env, "ext_upstream")
    with session_factory(make_engine(env.settings().database, pooled=False))() as session:
        upstream_date = session.execute(
            select(DagRun.logical_date).where(DagRun.dag_id == "ext_upstream", DagRun.run_id == upstream)
        ).scalar_one()
    waiter = trigger(env, "ext_waiter", upstream_date=upstream_date.isoformat())
    wait_until(
        lambda: len(_reschedules(env, "ext_waiter", waiter, "wait_produce")) >= 2,
        60,
        what="the external task sensor poking while the upstream task waits",
    )
    assert states(env, "ext_waiter", waiter)["wait_produce"].state != "success"
    (env.home.parent / "out" / "upstream_go").write_text("go")
    assert wait(env, "ext_upstream", upstream).state == "success"
    assert wait(env, "ext_waiter", waiter).state == "success", env.logs()
    produced = states(env, "ext_upstream", upstream)["produce"]
    sensed = states(env, "ext_waiter", waiter)["wait_produce"]
    assert produced.end_date is not None and sensed.end_date is not None and sensed.end_date >= produced.end_date


def test_dag_callbacks_run_once_per_finished_run_and_a_failing_one_changes_nothing(env: Env) -> None:
    env.scheduler()
    env.worker()
    ok, bad = trigger(env, "dag_callbacks_ok"), trigger(env, "dag_callbacks_fail")
    assert wait(env, "dag_callbacks_ok", ok).state == "success"
    assert wait(env, "dag_callbacks_fail", bad).state == "failed"
    path = env.home.parent / "out" / "dag_callbacks.lines"
    wait_until(lambda: path.exists() and len(path.read_text().splitlines()) >= 2, 30, what="both DAG callbacks")
    time.sleep(2)  # several scheduler passes (poll 0.5 s): a callback run twice would show here
    assert sorted(path.read_text().splitlines()) == sorted(
        [
            f"success dag_callbacks_ok {ok} success success",
            f"raise-failure dag_callbacks_fail {bad} failed task_failure",
        ]
    )
    assert wait(env, "dag_callbacks_fail", bad).state == "failed"
    assert "on_failure_callback of DAG dag_callbacks_fail" in env.logs()


def test_scheduler_wakes_up_when_a_reschedule_is_due_not_at_its_next_poll(env: Env) -> None:
    env.vars["RABBITRUN__SCHEDULER__POLL_INTERVAL_S"] = "60"  # no periodic pass would come in time
    env.scheduler()
    env.worker()
    run_id = trigger(env, "sensor_timeouts")
    started = time.monotonic()
    assert wait(env, "sensor_timeouts", run_id, timeout_s=50).state == "failed", env.logs()
    assert time.monotonic() - started < 50
    assert len(_reschedules(env, "sensor_timeouts", run_id, "hard")) >= 2  # each one woke the scheduler
