"""Shared fixtures: a throwaway vhost, a fresh database (SQLite or PostgreSQL), settings,
and real scheduler/worker processes that are stopped by their own PIDs.

A missing service is a failure that names the script to start it, never a skip.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_DAGS = REPO / "tests" / "system_dags"  # DAGs of the system and fault suites
PG_URL = os.environ.get("RABBITRUN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
AMQP_BASE = "amqp://guest:guest@127.0.0.1:5672/"
RUN_ID = uuid.uuid4().hex[:8]


def wait_until(predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.05, what: str = "") -> Any:
    """Poll until ``predicate`` returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what or predicate}")
        time.sleep(interval_s)


# rabbitmqctl needs the broker's Erlang cookie: root has it; a normal user (a Vagrant box)
# goes through password-less sudo, as scripts/ensure-rabbitmq does.
RABBITMQCTL = ["rabbitmqctl"] if os.geteuid() == 0 else ["sudo", "-n", "rabbitmqctl"]


def rabbitmqctl(*args: str) -> str:
    try:
        out = subprocess.run([*RABBITMQCTL, "-q", *args], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        pytest.fail("rabbitmqctl not found: run scripts/ensure-rabbitmq")
    if out.returncode != 0:
        pytest.fail(f"rabbitmqctl {' '.join(args)} failed ({out.stderr.strip()}): run scripts/ensure-rabbitmq")
    return out.stdout


@pytest.fixture(scope="session")
def vhost() -> Iterator[str]:
    """One vhost for this test session; deleted afterwards."""
    name = f"rabbitrun-test-{RUN_ID}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield name
    rabbitmqctl("delete_vhost", name)


def amqp_url(vhost: str) -> str:
    from urllib.parse import quote

    return AMQP_BASE + quote(vhost, safe="")


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


@dataclass
class Env:
    """Environment for rabbitrun processes of one test, and the matching settings."""

    home: Path
    vars: dict[str, str]
    prefix: str
    children: list[subprocess.Popen[str]] = field(default_factory=list)

    def settings(self) -> Any:
        from rabbitrun.settings import load_settings

        return load_settings(env=self.vars)  # the home is this test's own: its rabbitrun.toml too

    def cli(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rabbitrun", *args], env=self.vars, capture_output=True, text=True, timeout=timeout_s
        )

    def start(self, *args: str, ready: str) -> subprocess.Popen[str]:
        """Start a long-running rabbitrun process; wait for its ready line in its log."""
        log_path = self.home / f"{args[0]}-{len(self.children)}.log"
        fh = log_path.open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "rabbitrun", *args], env=self.vars, stdout=fh, stderr=subprocess.STDOUT, text=True
        )
        proc.log_path = log_path  # type: ignore[attr-defined]
        self.children.append(proc)

        def is_ready() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"{args[0]} exited with {proc.returncode}:\n{log_path.read_text()}")
            return ready in log_path.read_text()

        wait_until(is_ready, 30, what=f"{args[0]} ready")
        return proc

    def scheduler(self, *extra: str) -> subprocess.Popen[str]:
        return self.start("scheduler", *extra, ready="ready: reply queue")

    def worker(self, *extra: str) -> subprocess.Popen[str]:
        return self.start("worker", *extra, ready=" ready: queues=")

    def stop_all(self) -> None:
        for proc in self.children:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.children:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.args[3]} ---\n" + p.log_path.read_text()  # type: ignore[attr-defined]
            for p in self.children
        )


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
