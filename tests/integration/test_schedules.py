"""Scheduled runs through the scheduler's own functions: catchup, data intervals in the context,
max_active_runs, catchup=False, pause, and backfill."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from rabbitrun import client
from rabbitrun.models.base import utcnow
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.tables import DagRun, XComRow
from rabbitrun.runner import inprocess
from rabbitrun.scheduler import readiness, runs
from tests.support.env import Env
from tests.support.services import REPO


@pytest.fixture(autouse=True)
def schedule_dags(env: Env) -> None:
    """Scheduled DAGs live in their own folder: other suites' schedulers must not start their runs."""
    env.vars["RABBITRUN__CORE__DAGS_FOLDER"] = str(REPO / "tests" / "dags" / "schedule")


def test_catchup_runs_in_order_one_at_a_time_with_their_data_intervals(env: Env) -> None:
    settings = env.settings()
    bag = client.dagbag(settings)
    sessions = session_factory(make_engine(settings.database, pooled=False))
    with sessions() as session:
        created = runs.create_scheduled_runs(session, bag, utcnow())
        assert [r.run_id for r in created if r.dag_id == "daily_catchup"] == [
            "scheduled__2026-01-01T00:00:00+00:00",
            "scheduled__2026-01-02T00:00:00+00:00",
            "scheduled__2026-01-03T00:00:00+00:00",
        ]  # end_date 01-04 closes the last interval
        assert [r.run_id for r in created if r.dag_id == "six_hourly"].__len__() == 1  # catchup=False: latest
        assert runs.create_scheduled_runs(session, bag, utcnow()) == []  # idempotent
    for expected_day in ("2026-01-01", "2026-01-02", "2026-01-03"):
        with sessions() as session:
            started = [
                r for r in runs.start_queued_runs(session, bag, settings, utcnow()) if r.dag_id == "daily_catchup"
            ]
            assert [r.logical_date.date().isoformat() for r in started] == [expected_day]  # max_active_runs=1
            envelopes = [
                e for e in readiness.schedule(session, bag, settings, utcnow()) if e.key.dag_id == "daily_catchup"
            ]
        for envelope in envelopes:
            inprocess.run_attempt(settings, sessions, bag, envelope.key, hostname="t", in_process=True)
        with sessions() as session:
            readiness.schedule(session, bag, settings, utcnow())
    with sessions() as session:
        values = sorted(json.loads(x.value) for x in session.query(XComRow).filter_by(dag_id="daily_catchup"))
        states = {r.run_id: r.state for r in session.query(DagRun).filter_by(dag_id="daily_catchup")}
    assert values[0] == ["2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00", "2026-01-01"]
    assert set(states.values()) == {"success"}


def test_paused_dags_get_no_scheduled_runs_and_backfill_fills_a_range(env: Env) -> None:
    settings = env.settings()
    assert env.cli("dags", "pause", "six_hourly").returncode == 0
    bag = client.dagbag(settings)
    sessions = session_factory(make_engine(settings.database, pooled=False))
    with sessions() as session:
        assert not [r for r in runs.create_scheduled_runs(session, bag, utcnow()) if r.dag_id == "six_hourly"]
    run_ids = client.backfill(
        settings, "six_hourly", datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 2, tzinfo=UTC)
    )
    assert run_ids == [f"backfill__2026-02-01T{h:02d}:00:00+00:00" for h in (0, 6, 12, 18)]
    out = env.cli("dags", "backfill", "six_hourly", "-s", "2026-02-01", "-e", "2026-02-02")
    assert out.returncode == 0 and "4 backfill run(s)" in out.stdout  # existing runs are kept, not doubled
    with sessions() as session:
        assert session.query(DagRun).filter_by(dag_id="six_hourly", run_type="backfill").count() == 4
    assert env.cli("dags", "backfill", "example_etl", "-s", "2026-02-01", "-e", "2026-02-02").returncode == 2
