"""The task process boundary (DESIGN.md): a task holds no DB URL, no Fernet key and no broker
credentials, in its environment or its memory, nor does the zygote it is forked from; it reads
what its attempt may read through its worker, and is refused the rest.

The attack is performed for real: `tests/dags/system/isolation_probe.py` runs on a real worker and
copies out its own writable memory and its zygote's, its environment and its zygote's, and every
settings object it can reach; this test searches them for each secret the worker holds.

Not covered, and not claimed: the worker's own memory and environment, and the files of
RABBITRUN_HOME, are readable by any process of the same user (here root). Keeping a task from them
needs the task to run as another user.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from cryptography.fernet import Fernet

from tests.support.env import Env
from tests.support.runs import run_dag, states


def _secrets(env: Env) -> dict[str, bytes]:
    """Secrets the worker holds and this task never asks for, each unique to this test."""
    values = {
        "fernet key": Fernet.generate_key().decode(),
        "env-only variable": f"var-{secrets.token_hex(12)}",
        "env-only connection password": f"connpw{secrets.token_hex(12)}",
        "variable in the DB the task does not read": f"dbvar-{secrets.token_hex(12)}",
    }
    env.vars["RABBITRUN__CORE__FERNET_KEY"] = values["fernet key"]
    env.vars["RABBITRUN_VAR_UNASKED"] = values["env-only variable"]
    env.vars["RABBITRUN_CONN_UNASKED"] = f"postgres://u:{values['env-only connection password']}@db.example:5432/x"
    values["database URL"] = env.vars["RABBITRUN__DATABASE__URL"]
    values["broker URL"] = env.vars["RABBITRUN__BROKER__URL"]
    return {what: value.encode() for what, value in values.items()}


def test_a_task_finds_no_secret_of_its_worker_and_reads_only_what_its_attempt_may(env: Env) -> None:
    held = _secrets(env)
    allowed_password = f"allowed{secrets.token_hex(8)}"
    for args in (
        ("variables", "set", "probe_allowed", "visible-to-the-task"),
        ("variables", "set", "probe_unasked", held["variable in the DB the task does not read"].decode()),
        ("connections", "add", "probe_conn", "--conn-uri", f"postgres://user:{allowed_password}@db.example/x"),
    ):
        done = env.cli(*args)
        assert done.returncode == 0, done.stderr
    env.scheduler()
    env.worker()
    run_id, progress = run_dag(env, "isolation_probe", timeout_s=90)
    assert progress.state == "success", env.logs()

    out = env.home.parent / "out"
    report = json.loads((out / "probe.json").read_text())
    # its environment: no settings, Variables or Connections of the worker
    assert report["rabbitrun_env"] == [], report
    # nor a DB or broker library loaded (what the zygote imported, and the task's own path)
    assert report["db_or_broker_modules"] == [], report
    # no settings object in the process holds a secret (they are blanked before the zygote starts)
    assert report["settings_secrets"] == [], report
    assert report["direct_db"].startswith("TaskChannelError: no metadata DB"), report
    # the worker refuses what the attempt may not do
    assert report["other_run_xcom"].startswith("AccessDenied:") and "own DAG run" in report["other_run_xcom"]
    assert report["push_as_other"].startswith("AccessDenied:"), report
    # and serves what it may (decrypted by the worker)
    assert report["variable"] == "visible-to-the-task" and report["password_len"] == len(allowed_password)

    searched = {
        name: (out / name).read_bytes() for name in ("task.mem", "zygote.mem", "task.environ", "zygote.environ")
    }
    assert len(searched["task.mem"]) > 1_000_000 and len(searched["zygote.mem"]) > 1_000_000, "memory was copied"
    assert allowed_password.encode() in searched["task.mem"], "the search finds a value the task did read"
    leaks = [f"{what} in {name}" for name, data in searched.items() for what, value in held.items() if value in data]
    assert leaks == [], leaks

    # what a task may read through its worker still works downstream
    rows = states(env, "isolation_probe", run_id)
    assert {task_id: row.state for task_id, row in rows.items()} == {"probe": "success", "check": "success"}
    checked = _return_value(env, "isolation_probe", run_id, "check")
    assert checked == {"upstream": "probed", "mine": "pushed by the probe"}

    # a DAG that lists isolation_probe in xcom_pull_from reads its runs, and still no other DAG's
    reader_run, reader = run_dag(env, "xcom_reader", timeout_s=60, probe_run=run_id)
    assert reader.state == "success", env.logs()
    read = _return_value(env, "xcom_reader", reader_run, "read_other_dag")
    assert isinstance(read, dict) and read["allowed"] == "pushed by the probe", read
    assert read["refused"].startswith("AccessDenied:") and "xcom_pull_from" in read["refused"], read


def _return_value(env: Env, dag_id: str, run_id: str, task_id: str) -> object:
    from rabbitrun.data.access import build
    from rabbitrun.models.engine import make_engine, session_factory

    settings = env.settings()
    access = build(settings, session_factory(make_engine(settings.database, pooled=False)))
    return access.get_xcoms(dag_id, run_id, [task_id], "return_value").get((task_id, -1))


def test_the_probe_dumps_what_it_claims_to(tmp_path: Path) -> None:
    """The memory copy the isolation test relies on finds a value this process holds."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "isolation_probe", Path(__file__).parents[1] / "dags" / "system" / "isolation_probe.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    needle = f"needle-{secrets.token_hex(16)}".encode()
    held = bytearray(needle)  # noqa: F841 - kept alive in this process's heap while it is copied
    module.dump_writable_memory("self", tmp_path / "self.mem")
    assert needle in (tmp_path / "self.mem").read_bytes()
