"""The CLI's checks and bad-input paths against the real DB and broker: db check / health when
the schema is missing or old, SQLite in WAL mode, unknown ids (exit 2), `topology declare/export`
and scripts/declare-topology, a topology mismatch as one plain line, `tasks logs --try`."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess

import aio_pika
import pytest
from sqlalchemy import text

from rabbitrun.errors import EXIT_UNAVAILABLE, EXIT_USAGE
from rabbitrun.models.base import Base
from rabbitrun.models.engine import make_engine
from rabbitrun.names import Names
from tests.support.env import Env
from tests.support.runs import queue_run
from tests.support.services import REPO


def _sql(env: Env, statement: str) -> None:
    engine = make_engine(env.settings().database, pooled=False)
    with engine.begin() as conn:
        conn.execute(text(statement))
    engine.dispose()


def test_db_check_and_health_report_a_missing_then_an_old_schema(env: Env) -> None:
    assert env.cli("topology", "declare").returncode == 0
    _sql(env, "UPDATE alembic_version SET version_num = '0001'")
    old = env.cli("db", "check")
    assert old.returncode == EXIT_UNAVAILABLE
    assert old.stderr.count("\n") == 1 and "schema at 0001, code expects" in old.stderr
    assert "rabbitrun db init" in old.stderr
    unhealthy = env.cli("health")
    assert unhealthy.returncode == EXIT_UNAVAILABLE and "unhealthy: " in unhealthy.stderr
    assert "schema at 0001" in unhealthy.stderr
    engine = make_engine(env.settings().database, pooled=False)
    Base.metadata.drop_all(engine)  # an empty database
    engine.dispose()
    _sql(env, "DROP TABLE alembic_version")
    missing = env.cli("db", "check")
    assert missing.returncode == EXIT_UNAVAILABLE and "is not initialised (no schema)" in missing.stderr
    assert env.cli("health").returncode == EXIT_UNAVAILABLE
    assert env.cli("db", "init").returncode == 0  # creates what is missing, stamps the head
    assert env.cli("db", "check").returncode == 0 and env.cli("health").returncode == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_database_is_in_wal_mode(env: Env) -> None:
    path = str(env.settings().database.url).removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:  # journal_mode=WAL is persistent: a plain connection sees it
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_unknown_ids_are_one_line_and_exit_2_for_states_logs_and_clear(env: Env) -> None:
    run_id = queue_run(env, "simple")
    for args in (
        ["tasks", "states", "nope", run_id],
        ["tasks", "states", "simple", "no_such_run"],
        ["tasks", "logs", "nope", "one", run_id],
        ["tasks", "logs", "simple", "nope", run_id],
        ["tasks", "logs", "simple", "one", "no_such_run"],
        ["tasks", "clear", "nope"],
    ):
        out = env.cli(*args)
        assert out.returncode == EXIT_USAGE, (args, out.stderr)
        assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, (args, out.stderr)
        assert "not found" in out.stderr, (args, out.stderr)


def test_tasks_logs_try_reads_that_try(env: Env) -> None:
    run_id = queue_run(env, "simple")
    assert env.cli("tasks", "run", "simple", "one", run_id).returncode == 0  # try 1
    assert env.cli("tasks", "run", "simple", "one", run_id).returncode == 0  # try 2
    first = env.cli("tasks", "logs", "simple", "one", run_id, "--try", "1")
    assert first.returncode == 0, first.stderr
    assert "Starting attempt 1 of" in first.stdout and "try=2" not in first.stdout
    assert first.stderr.strip().endswith("/one/" + run_id + "/1.log")
    latest = env.cli("tasks", "logs", "simple", "one", run_id)
    assert "Starting attempt 2 of" in latest.stdout and latest.stderr.strip().endswith("/2.log")
    missing = env.cli("tasks", "logs", "simple", "one", run_id, "--try", "7")
    assert missing.returncode != 0 and "no log for simple.one" in missing.stderr, missing.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_topology_declare_export_and_the_script(env: Env) -> None:
    first = env.cli("topology", "declare")
    assert first.returncode == 0, first.stderr
    assert f"{env.prefix}.rabbitrun.q.default" in first.stdout
    assert env.cli("topology", "declare").returncode == 0  # idempotent
    script = subprocess.run(
        [str(REPO / "scripts" / "declare-topology")], env=env.vars, capture_output=True, text=True, timeout=300
    )
    assert script.returncode == 0, script.stderr
    exported = env.cli("topology", "export", "--vhost", "some-vhost")
    assert exported.returncode == 0, exported.stderr
    definitions = json.loads(exported.stdout)
    assert {"exchanges", "queues", "bindings"} <= set(definitions)
    queues = {q["name"]: q for q in definitions["queues"]}
    default = queues[f"{env.prefix}.rabbitrun.q.default"]
    assert default["vhost"] == "some-vhost" and default["durable"] is True
    assert default["arguments"]["x-max-priority"] == 10
    exchanges = {e["name"]: e["type"] for e in definitions["exchanges"]}
    assert exchanges[f"{env.prefix}.rabbitrun.tasks"] == "direct"
    assert exchanges[f"{env.prefix}.rabbitrun.events"] == "topic"
    assert {"source", "destination", "destination_type", "routing_key", "vhost"} <= set(definitions["bindings"][0])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_topology_mismatch_is_one_plain_line_and_exit_2(env: Env) -> None:
    names = Names(env.prefix)

    async def precreate() -> None:
        conn = await aio_pika.connect(env.vars["RABBITRUN__BROKER__URL"])
        async with conn:
            channel = await conn.channel()
            await channel.declare_queue(
                names.task_queue("default"),
                durable=True,
                arguments={
                    "x-queue-type": "classic",
                    "x-dead-letter-exchange": names.dead_letter_exchange,
                    "x-max-priority": 3,
                },
            )  # all the topology wants but the priority

    asyncio.run(precreate())
    out = env.cli("topology", "declare")
    assert out.returncode == EXIT_USAGE, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: queue ")
    assert names.task_queue("default") in out.stderr and "x-max-priority=3" in out.stderr
    assert "PRECONDITION_FAILED" not in out.stderr and "Traceback" not in out.stderr
