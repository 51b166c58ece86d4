"""Services down, as a user at the terminal sees it: one line naming the URL (password masked),
the "unavailable" exit code, no traceback, within seconds, whatever the command."""

from __future__ import annotations

import time

import pytest

from rabbitrun.errors import EXIT_UNAVAILABLE, BrokerUnavailable, DatabaseUnavailable
from tests.support.env import Env

DOWN_PG = "postgresql+psycopg://postgres:dbpw@127.0.0.1:1/nowhere"  # nothing listens on port 1
COMMANDS = [
    ("tasks", "states", "simple", "some_run"),
    ("tasks", "logs", "simple", "one", "some_run"),
    ("variables", "list"),
    ("variables", "get", "api_key"),
    ("connections", "list"),
    ("rotate-fernet-key",),
    ("db", "check"),
    ("dags", "trigger", "simple"),  # the lean (SQLAlchemy-free) path
    ("dags", "trigger", "simple", "--wait"),
]


def _run_timed(env: Env, *args: str) -> tuple[float, object]:
    started = time.monotonic()
    out = env.cli(*args, timeout_s=60)
    return time.monotonic() - started, out


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: "-".join(a))
def test_unreachable_database_is_one_line_naming_the_masked_url(env: Env, args: tuple[str, ...]) -> None:
    env.vars["RABBITRUN__DATABASE__URL"] = DOWN_PG
    env.vars["RABBITRUN__DATABASE__CONNECT_TIMEOUT_S"] = "2"
    elapsed_s, out = _run_timed(env, *args)
    assert out.returncode == EXIT_UNAVAILABLE == DatabaseUnavailable.exit_code, out.stderr  # type: ignore[attr-defined]
    stderr = out.stderr  # type: ignore[attr-defined]
    assert stderr.startswith(
        "error: cannot use the metadata database at postgresql+psycopg://postgres:***@127.0.0.1:1/nowhere: "
    )
    assert stderr.count("\n") == 1 and "dbpw" not in stderr and "Traceback" not in stderr
    assert elapsed_s < 20


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_unopenable_sqlite_file_is_reported_the_same_way(env: Env) -> None:
    env.vars["RABBITRUN__DATABASE__URL"] = "sqlite:////proc/rabbitrun-cannot-be-here.db"
    out = env.cli("variables", "list")
    assert out.returncode == EXIT_UNAVAILABLE, out.stderr
    assert out.stderr.startswith("error: cannot use the metadata database at sqlite:////proc/rabbitrun-cannot")
    assert out.stderr.count("\n") == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_health_with_the_database_down_names_it_and_exits_unavailable(env: Env) -> None:
    assert env.cli("topology", "declare").returncode == 0
    assert env.cli("health").returncode == 0
    env.vars["RABBITRUN__DATABASE__URL"] = DOWN_PG
    elapsed_s, out = _run_timed(env, "health")
    assert out.returncode == EXIT_UNAVAILABLE  # type: ignore[attr-defined]
    stderr = out.stderr  # type: ignore[attr-defined]
    assert stderr.splitlines() == [stderr.splitlines()[0]]  # the broker is fine: only the database line
    assert stderr.startswith("unhealthy: cannot use the metadata database at postgresql+psycopg://postgres:***@")
    assert "dbpw" not in stderr and elapsed_s < 20


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "args", [("topology", "declare"), ("broker", "check"), ("inspect", "ping")], ids=lambda a: "-".join(a)
)
def test_broker_down_is_one_clean_line_without_the_transport_noise(env: Env, args: tuple[str, ...]) -> None:
    env.vars["RABBITRUN__BROKER__URL"] = "amqp://guest:brokerpw@127.0.0.1:1/"
    env.vars["RABBITRUN__BROKER__CONNECT_TIMEOUT_S"] = "2"
    elapsed_s, out = _run_timed(env, *args)
    assert out.returncode == EXIT_UNAVAILABLE == BrokerUnavailable.exit_code  # type: ignore[attr-defined]
    stderr = out.stderr  # type: ignore[attr-defined]
    assert stderr.startswith("error: cannot connect to RabbitMQ at amqp://guest:***@127.0.0.1:1/"), stderr
    assert stderr.count("\n") == 1 and "brokerpw" not in stderr and "creating transport" not in stderr
    assert elapsed_s < 20
