"""Variables against a real DB: the Airflow API, the per-attempt cache, environment overrides,
and every CLI command including an all-or-nothing import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import event

from rabbitrun import client
from rabbitrun.data.access import Variable, activate, build, deactivate
from rabbitrun.errors import SecretsError, VariableNotFound
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models.engine import session_factory
from rabbitrun.models.tables import VariableRow
from rabbitrun.runner import inprocess
from tests.support.env import Env
from tests.support.runs import queue_run
from tests.support.secrets import engine_of, raw_session, xcoms


def test_a_variable_read_twice_in_one_attempt_hits_the_db_once(env: Env) -> None:
    env.cli("variables", "set", "color", "blue")
    env.cli("variables", "set", "cfg", '{"a": 1}', "--json")
    run_id = queue_run(env, "secrets_dag")
    settings = env.settings()
    engine = engine_of(env)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    outcome = inprocess.run_attempt(
        settings,
        session_factory(engine),
        client.dagbag(settings),
        TaskInstanceKey("secrets_dag", "read_vars", run_id, -1, 1),
        hostname="t",
        in_process=True,
    )
    assert outcome.state == "success"
    value = json.loads(xcoms(env, run_id)[("read_vars", "return_value")].value)
    assert value == {"color": "blue", "again": "blue", "cfg": {"a": 1}, "missing": "dflt"}
    reads = [s for s in statements if "FROM variable" in s]
    assert len(reads) == 3, reads  # color once (Variable.get + context["var"] share the cache), cfg, nope


def test_environment_overrides_win_over_the_db(env: Env) -> None:
    env.cli("variables", "set", "color", "blue")
    env.vars["RABBITRUN_VAR_COLOR"] = "green"
    assert env.cli("variables", "get", "color").stdout.strip() == "green"
    access = build(env.settings(), session_factory(engine_of(env)))
    assert access.variables.get("color") == "green"
    env.vars["RABBITRUN_VAR_LIMITS"] = '{"max": 3}'
    assert build(env.settings(), access.sessions).variables.get("limits", deserialize_json=True) == {"max": 3}


def test_the_variable_api_in_a_task_context(env: Env) -> None:
    access = build(env.settings(), session_factory(engine_of(env)))
    token = activate(access)
    try:
        Variable.set("obj", {"k": [1, 2]}, serialize_json=True, description="an object")
        assert Variable.get("obj", deserialize_json=True) == {"k": [1, 2]}
        assert Variable.get("obj") == '{"k": [1, 2]}'
        assert Variable.get("nope", default_var=None) is None
        with pytest.raises(VariableNotFound, match="Variable nope does not exist") as caught:
            Variable.get("nope")
        assert isinstance(caught.value, KeyError) and caught.value.key == "nope"
        Variable.set("text", "not json")
        with pytest.raises(SecretsError, match="variable text is not valid JSON"):
            Variable.get("text", deserialize_json=True)
        assert Variable.delete("obj") and not Variable.delete("obj")
        with pytest.raises(VariableNotFound):
            Variable.get("obj")
    finally:
        deactivate(token)


def test_outside_a_task_variable_reads_are_fresh_not_cached_for_the_process(env: Env) -> None:
    script = (
        "from rabbitrun import Variable, client\n"
        "from rabbitrun.settings import load_settings\n"
        "Variable.set('k', 'one')\n"
        "first = Variable.get('k')\n"
        "client.data_access(load_settings()).variables.set('k', 'two')\n"
        "print(first, Variable.get('k'))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env=env.vars, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["one", "two"], out.stderr


def test_cli_set_get_list_delete_round_trip_masks_sensitive_values_in_the_listing(env: Env) -> None:
    assert env.cli("variables", "set", "color", "blue", "--description", "paint").returncode == 0
    assert env.cli("variables", "set", "db_password", "pw-9876").returncode == 0
    assert env.cli("variables", "get", "color").stdout.strip() == "blue"
    listing = env.cli("variables", "list").stdout
    assert "color\tblue\tpaint" in listing and "db_password\t***" in listing and "pw-9876" not in listing
    assert env.cli("variables", "delete", "color").returncode == 0
    missing = env.cli("variables", "get", "color")
    assert missing.returncode == 2 and "Variable color does not exist" in missing.stderr
    assert env.cli("variables", "get", "color", "--default", "x").stdout.strip() == "x"
    assert env.cli("variables", "delete", "nope").returncode == 2
    bad = env.cli("variables", "set", "j", "{nope", "--json")
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_import_export_round_trip(env: Env, tmp_path: Path) -> None:
    data = {"a": "text", "b": {"nested": [1, 2]}, "c": 3, "d": [True, None]}
    (tmp_path / "vars.json").write_text(json.dumps(data))
    imported = env.cli("variables", "import", str(tmp_path / "vars.json"))
    assert imported.returncode == 0 and "4 variable(s) imported" in imported.stdout
    assert env.cli("variables", "export", str(tmp_path / "out.json")).returncode == 0
    assert json.loads((tmp_path / "out.json").read_text()) == data


def test_a_bad_import_file_writes_nothing(env: Env, tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('{"a": "x",')
    broken = env.cli("variables", "import", str(tmp_path / "broken.json"))
    assert broken.returncode == 2 and "not a readable JSON file" in broken.stderr
    (tmp_path / "list.json").write_text('["a"]')
    assert "must hold a JSON object" in env.cli("variables", "import", str(tmp_path / "list.json")).stderr
    (tmp_path / "partial.json").write_text(json.dumps({"good": "x", "": "empty key"}))
    partial = env.cli("variables", "import", str(tmp_path / "partial.json"))
    assert partial.returncode == 2 and "key must not be empty" in partial.stderr
    with raw_session(env) as session:
        assert session.query(VariableRow).count() == 0
