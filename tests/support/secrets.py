"""Helpers of the Variables / Connections / XCom / masking tests (imported explicitly, not a conftest)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from rabbitrun import client, runner
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.tables import XComRow
from tests.support.env import Env

SECRET_URI = "postgresql://svc:Pa55-w0rd-zz@db.example:5432/app?sslmode=require"


def engine_of(env: Env) -> Engine:
    return make_engine(env.settings().database, pooled=False)


def raw_session(env: Env) -> Session:
    """A session on the test's DB that bypasses every store: what an attacker with the DB file sees."""
    return session_factory(engine_of(env))()


def run_in_process(
    env: Env, dag_id: str, run_id: str, task_id: str, try_number: int | None = 1
) -> runner.AttemptOutcome:
    outcome: runner.AttemptOutcome = client.run_task(
        env.settings(), dag_id, task_id, run_id, try_number=try_number, hostname="test"
    )
    return outcome


def xcoms(env: Env, run_id: str) -> dict[tuple[str, str], XComRow]:
    with raw_session(env) as session:
        return {(r.task_id, r.key): r for r in session.query(XComRow).filter_by(run_id=run_id)}


def log_file(env: Env, dag_id: str, task_id: str, run_id: str, try_number: int = 1) -> Path:
    return Path(env.settings().logging.base_log_folder) / dag_id / task_id / run_id / f"{try_number}.log"
