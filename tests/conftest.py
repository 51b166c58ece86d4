"""Shared fixtures: a throwaway vhost, a fresh database (SQLite or PostgreSQL), settings,
and real scheduler/worker processes that are stopped by their own PIDs.

A missing service is a failure that names the script to start it, never a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.env import Env
from tests.support.services import PG_URL, RUN_ID, TEST_DAGS, amqp_url, rabbitmqctl


@pytest.fixture(scope="session")
def vhost() -> Iterator[str]:
    """One vhost for this test session; deleted afterwards."""
    name = f"rabbitrun-test-{RUN_ID}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield name
    rabbitmqctl("delete_vhost", name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'rabbitrun.db'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(PG_URL)
    name = f"rr_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    dsn = f"host={base.host} port={base.port or 5432} user={base.username or 'postgres'} dbname={base.database}"
    try:
        admin = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_URL} unreachable ({exc}): run scripts/ensure-postgres")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def env(tmp_path: Path, vhost: str, db_url: str, request: pytest.FixtureRequest) -> Iterator[Env]:
    """A RABBITRUN_HOME, database and name prefix of this test alone; processes stopped after."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "out").mkdir()
    variables = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "RABBITRUN_HOME": str(home),
        "RABBITRUN__BROKER__URL": amqp_url(vhost),
        "RABBITRUN__BROKER__PREFIX": prefix,
        "RABBITRUN__DATABASE__URL": db_url,
        "RABBITRUN__CORE__DAGS_FOLDER": str(TEST_DAGS),
        "RABBITRUN__SCHEDULER__SCHEDULER_ID": f"sched-{prefix}",
        "RABBITRUN__SCHEDULER__POLL_INTERVAL_S": "0.5",
        "RABBITRUN__WORKER__HOSTNAME": f"w1-{prefix}@test",
        "RABBITRUN__WORKER__CONCURRENCY": "2",
        "RABBITRUN__WORKER__SHUTDOWN_TIMEOUT_S": "10",
    }
    e = Env(home, variables, prefix)
    init = e.cli("db", "init")
    assert init.returncode == 0, init.stderr
    yield e
    e.stop_all()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(e.logs())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep
