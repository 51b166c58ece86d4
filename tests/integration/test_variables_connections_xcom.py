"""Variables, Connections and XCom against a real DB (SQLite and PostgreSQL): encryption at
rest, rotation, environment overrides, the per-attempt cache, masking in logs, XCom types,
pickling gate, size limit, the file backend and cleanup. Tasks run in-process through the
same runner a worker's child uses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event

from rabbitrun import client, runner
from rabbitrun.errors import SecretsError, VariableNotFound, XComError
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.tables import ConnectionRow, VariableRow, XComRow
from rabbitrun.runtime import build
from rabbitrun.secrets import generate_key
from tests.conftest import Env
from tests.helpers import queue_run, schedule_again, states

SECRET_URI = "postgresql://svc:Pa55-w0rd-zz@db.example:5432/app?sslmode=require"


def run_in_process(env: Env, dag_id: str, run_id: str, task_id: str) -> runner.AttemptOutcome:
    return client.run_task(env.settings(), dag_id, task_id, run_id, try_number=1, hostname="test")


def xcoms(env: Env, run_id: str) -> dict[tuple[str, str], XComRow]:
    with session_factory(make_engine(env.settings().database, pooled=False))() as session:
        return {(r.task_id, r.key): r for r in session.query(XComRow).filter_by(run_id=run_id)}


def test_db_init_generates_a_private_fernet_key_and_values_are_encrypted_at_rest(env: Env) -> None:
    config = env.home / "rabbitrun.toml"
    assert "fernet_key" in config.read_text() and config.stat().st_mode & 0o777 == 0o600
    assert env.cli("variables", "set", "api_key", "s3cr3t-value").returncode == 0
    assert env.cli("connections", "add", "secret_db", "--conn-uri", SECRET_URI).returncode == 0
    with session_factory(make_engine(env.settings().database, pooled=False))() as session:
        var = session.query(VariableRow).filter_by(key="api_key").one()
        conn = session.query(ConnectionRow).filter_by(conn_id="secret_db").one()
    assert var.is_encrypted and "s3cr3t" not in var.val
    assert conn.is_encrypted and "Pa55" not in (conn.password or "") and "sslmode" not in (conn.extra or "")
    listing = env.cli("variables", "list").stdout + env.cli("connections", "list").stdout
    assert "s3cr3t" not in listing and "Pa55" not in listing and "***" in listing
    assert env.cli("variables", "get", "api_key").stdout.strip() == "s3cr3t-value"


def test_secrets_never_reach_the_task_log_or_the_reason(env: Env) -> None:
    env.cli("variables", "set", "api_key", "s3cr3t-value")
    env.cli("connections", "add", "secret_db", "--conn-uri", SECRET_URI)
    run_id = queue_run(env, "secrets_dag")
    outcome = run_in_process(env, "secrets_dag", run_id, "leak")
    assert outcome.state == "failed"
    log_text = env.cli("tasks", "logs", "secrets_dag", "leak", run_id).stdout
    file_text = (Path(env.settings().logging.base_log_folder) / "secrets_dag" / "leak" / run_id / "1.log").read_text()
    for text in (log_text, file_text, outcome.error, states(env, "secrets_dag", run_id)["leak"].reason or ""):
        assert "Pa55-w0rd-zz" not in text and "s3cr3t-value" not in text and "topsecret-xyz" not in text
    assert "connecting with ***" in file_text and "api key is ***" in file_text
    assert "ValueError: failed with *** and ***" in file_text  # the traceback is masked too


def test_environment_overrides_win_and_reads_are_cached_per_attempt(env: Env) -> None:
    env.cli("variables", "set", "color", "blue")
    env.cli("variables", "set", "cfg", '{"a": 1}', "--json")
    run_id = queue_run(env, "secrets_dag")
    settings = env.settings()
    engine = make_engine(settings.database, pooled=False)
    selects: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda *a: selects.append(a[2]))
    outcome = runner.run_attempt(settings, session_factory(engine), client.dagbag(settings),
                                 TaskInstanceKey("secrets_dag", "read_vars", run_id, -1, 1),
                                 hostname="t", in_process=True)
    assert outcome.state == "success"
    value = json.loads(xcoms(env, run_id)[("read_vars", "return_value")].value)
    assert value == {"color": "blue", "again": "blue", "cfg": {"a": 1}, "missing": "dflt"}
    assert len([s for s in selects if "FROM variable" in s]) == 3, selects  # color once (cached), cfg, nope

    env.vars["RABBITRUN_VAR_COLOR"] = "green"
    assert env.cli("variables", "get", "color").stdout.strip() == "green"
    overridden = build(env.settings(), session_factory(engine))
    assert overridden.variables.get("color") == "green"
    env.vars["RABBITRUN_CONN_ENVDB"] = json.dumps({"conn_type": "mysql", "host": "h", "password": "pw"})
    assert build(env.settings(), session_factory(engine)).connections.get("envdb").host == "h"
    with pytest.raises(VariableNotFound, match="Variable nope does not exist"):
        overridden.variables.get("nope")


def test_wrong_or_missing_key_is_a_clear_error_and_rotation_moves_to_the_new_key(env: Env) -> None:
    env.cli("variables", "set", "api_key", "s3cr3t-value")
    env.cli("connections", "add", "secret_db", "--conn-uri", SECRET_URI)
    old_key = env.settings().core.fernet_key
    env.vars["RABBITRUN__CORE__FERNET_KEY"] = generate_key()
    wrong = env.cli("variables", "get", "api_key")
    assert wrong.returncode == 2 and "variable api_key cannot be decrypted" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    bad_conn = env.cli("connections", "get", "secret_db")
    assert "connection secret_db cannot be decrypted" in bad_conn.stderr

    new_key = generate_key()
    env.vars["RABBITRUN__CORE__FERNET_KEY"] = f"{new_key},{old_key}"
    rotated = env.cli("rotate-fernet-key")
    assert rotated.returncode == 0 and "1 variable(s) and 1 connection(s)" in rotated.stdout
    env.vars["RABBITRUN__CORE__FERNET_KEY"] = new_key  # the old key is gone: rows still readable
    assert env.cli("variables", "get", "api_key").stdout.strip() == "s3cr3t-value"
    conn = json.loads(env.cli("connections", "get", "secret_db", "--show-password").stdout)
    assert conn["password"] == "Pa55-w0rd-zz" and json.loads(conn["extra"]) == {"sslmode": "require"}


def test_cli_import_export_round_trips(env: Env, tmp_path: Path) -> None:
    (tmp_path / "vars.json").write_text(json.dumps({"a": "text", "b": {"nested": [1, 2]}}))
    assert env.cli("variables", "import", str(tmp_path / "vars.json")).returncode == 0
    assert env.cli("variables", "export", str(tmp_path / "out.json")).returncode == 0
    assert json.loads((tmp_path / "out.json").read_text()) == {"a": "text", "b": {"nested": [1, 2]}}
    env.cli("connections", "add", "c1", "--conn-type", "http", "--conn-host", "api.example", "--conn-password", "pw",
            "--conn-extra", '{"timeout": 3}')
    assert env.cli("connections", "export", str(tmp_path / "conns.json")).returncode == 0
    assert env.cli("connections", "delete", "c1").returncode == 0
    assert env.cli("connections", "import", str(tmp_path / "conns.json")).returncode == 0
    conn = json.loads(env.cli("connections", "get", "c1", "--show-password").stdout)
    assert (conn["host"], conn["password"], json.loads(conn["extra"])) == ("api.example", "pw", {"timeout": 3})
    assert env.cli("variables", "delete", "nope").returncode == 2


def test_xcom_keeps_types_and_large_values_can_live_in_files(env: Env) -> None:
    env.vars["RABBITRUN__CORE__XCOM_BACKEND"] = "rabbitrun.xcom_backends.FileXComBackend"
    run_id = queue_run(env, "secrets_dag")
    assert run_in_process(env, "secrets_dag", run_id, "make_types").state == "success"
    schedule_again(env)
    assert run_in_process(env, "secrets_dag", run_id, "check_types").state == "success"
    assert run_in_process(env, "secrets_dag", run_id, "big").state == "success"
    rows = xcoms(env, run_id)
    assert json.loads(rows[("check_types", "return_value")].value) == ["tuple", "datetime", "set"]
    ref = rows[("big", "return_value")]
    assert ref.value_type == "ref" and len(ref.value) < 500
    assert Path(json.loads(ref.value)["path"]).read_text() == json.dumps("x" * 5000)
    access = build(env.settings(), session_factory(make_engine(env.settings().database, pooled=False)))
    from rabbitrun.runtime import activate, deactivate, XCom

    token = activate(access)
    try:
        assert XCom.get_one(dag_id="secrets_dag", run_id=run_id, task_id="big") == "x" * 5000
    finally:
        deactivate(token)


def test_pickling_gate_size_limit_and_rerun_replaces_xcoms(env: Env) -> None:
    run_id = queue_run(env, "secrets_dag")
    access = build(env.settings(), session_factory(make_engine(env.settings().database, pooled=False)))
    from rabbitrun.models import xcom

    key = TaskInstanceKey("secrets_dag", "big", run_id)
    with access.sessions() as session:
        with pytest.raises(XComError, match="ENABLE_XCOM_PICKLING"):
            xcom.set_xcom(session, key, "obj", object(), allow_pickle=False, max_bytes=0)
        with pytest.raises(XComError, match=r"XCom 'k' of task secrets_dag.big is \d+ bytes, over"):
            xcom.set_xcom(session, key, "k", "y" * 100, allow_pickle=False, max_bytes=50)
        xcom.set_xcom(session, key, "stale", 1, allow_pickle=False, max_bytes=0)
        session.commit()
    env.vars["RABBITRUN__CORE__MAX_XCOM_SIZE"] = "100"
    outcome = run_in_process(env, "secrets_dag", run_id, "big")
    assert outcome.state == "failed" and "max_xcom_size" in outcome.error
    assert ("big", "stale") not in xcoms(env, run_id)  # the claim cleared the previous XComs


def test_db_clean_dry_run_counts_and_real_run_deletes(env: Env) -> None:
    run_id = queue_run(env, "secrets_dag")
    run_in_process(env, "secrets_dag", run_id, "make_types")
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    dry = env.cli("db", "clean", "--before", future, "--tables", "xcom", "--dry-run")
    assert "xcom: 1 row(s) would be deleted" in dry.stdout
    assert len(xcoms(env, run_id)) == 1
    real = env.cli("db", "clean", "--before", future, "--tables", "xcom,task_attempt")
    assert "xcom: 1 row(s) deleted" in real.stdout and not xcoms(env, run_id)
    assert env.cli("db", "clean", "--before", "yesterday").returncode == 2


def test_fernet_key_error_names_the_setting() -> None:
    from rabbitrun.secrets import Cipher

    with pytest.raises(SecretsError, match="fernet_key"):
        Cipher("not-a-key")
