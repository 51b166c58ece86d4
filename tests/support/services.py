"""The real services the tests use (RabbitMQ, PostgreSQL), their addresses, and waiting on them."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TEST_DAGS = REPO / "tests" / "dags" / "system"  # DAGs of the system and fault suites (tests/dags/README.md)
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


def amqp_url(vhost: str) -> str:
    from urllib.parse import quote

    return AMQP_BASE + quote(vhost, safe="")
