"""Connections against a real DB: URIs and fields, environment overrides, every CLI command,
and bad input that writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rabbitrun.data.access import Connection, activate, build, deactivate
from rabbitrun.errors import ConnectionNotFound
from rabbitrun.models.engine import session_factory
from rabbitrun.models.tables import ConnectionRow
from tests.support.env import Env
from tests.support.secrets import SECRET_URI, engine_of, raw_session


def test_cli_add_by_uri_or_fields_get_list_and_delete(env: Env) -> None:
    added = env.cli("connections", "add", "secret_db", "--conn-uri", SECRET_URI)
    assert added.returncode == 0 and "svc:***@db.example" in added.stdout and "Pa55" not in added.stdout
    assert (
        env.cli(
            "connections",
            "add",
            "api",
            "--conn-type",
            "http",
            "--conn-host",
            "api.example",
            "--conn-login",
            "me",
            "--conn-password",
            "pw-4321",
            "--conn-port",
            "8443",
            "--conn-extra",
            '{"api_key": "k-8765", "timeout": 3}',
        ).returncode
        == 0
    )
    shown = json.loads(env.cli("connections", "get", "secret_db").stdout)
    assert shown["password"] == "***" and shown["schema"] == "app" and shown["port"] == 5432
    full = json.loads(env.cli("connections", "get", "secret_db", "--show-password").stdout)
    assert Connection(**full) == Connection.from_uri("secret_db", SECRET_URI)
    listing = env.cli("connections", "list").stdout
    assert "secret_db\tpostgresql\tpostgresql://svc:***@db.example:5432/app" in listing
    assert not [s for s in ("Pa55", "pw-4321", "k-8765") if s in listing]
    duplicate = env.cli("connections", "add", "api", "--conn-type", "http")
    assert duplicate.returncode == 2 and "connection api already exists" in duplicate.stderr
    assert env.cli("connections", "delete", "api").returncode == 0
    gone = env.cli("connections", "get", "api")
    assert gone.returncode == 2 and "Connection api does not exist" in gone.stderr


def test_bad_input_is_a_clear_error_and_writes_nothing(env: Env) -> None:
    cases = [
        (["--conn-uri", "not a uri"], "is not a URI"),
        (["--conn-uri", "postgres://h:port/x"], "bad port"),
        (["--conn-uri", "postgress://h/x"], "unknown conn_type 'postgress'; did you mean 'postgres'"),
        (["--conn-type", "http", "--conn-extra", "{nope"], "extra is not valid JSON"),
        ([], "give either --conn-uri or --conn-type"),
    ]
    for args, message in cases:
        out = env.cli("connections", "add", "c", *args)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
    with raw_session(env) as session:
        assert session.query(ConnectionRow).count() == 0


def test_cli_import_export_round_trip_and_an_import_is_all_or_nothing(env: Env, tmp_path: Path) -> None:
    env.cli(
        "connections",
        "add",
        "c1",
        "--conn-type",
        "http",
        "--conn-host",
        "api.example",
        "--conn-password",
        "pw",
        "--conn-extra",
        '{"timeout": 3}',
    )
    env.cli("connections", "add", "c2", "--conn-uri", SECRET_URI)
    assert env.cli("connections", "export", str(tmp_path / "conns.json")).returncode == 0
    exported = json.loads((tmp_path / "conns.json").read_text())
    assert set(exported) == {"c1", "c2"} and exported["c2"]["password"] == "Pa55-w0rd-zz"
    assert env.cli("connections", "delete", "c1").returncode == 0
    env.cli("connections", "delete", "c2")
    imported = env.cli("connections", "import", str(tmp_path / "conns.json"))
    assert imported.returncode == 0 and "2 connection(s) imported" in imported.stdout
    conn = json.loads(env.cli("connections", "get", "c1", "--show-password").stdout)
    assert (conn["host"], conn["password"], json.loads(conn["extra"])) == ("api.example", "pw", {"timeout": 3})

    bad = {"c1": {"conn_type": "http", "host": "changed"}, "c3": "redis://r:6379/0", "c4": {"conn_type": "nosuch"}}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    out = env.cli("connections", "import", str(tmp_path / "bad.json"))
    assert out.returncode == 2 and "connection c4: unknown conn_type 'nosuch'" in out.stderr
    (tmp_path / "broken.json").write_text("{")
    assert env.cli("connections", "import", str(tmp_path / "broken.json")).returncode == 2
    with raw_session(env) as session:
        assert sorted(r.conn_id for r in session.query(ConnectionRow)) == ["c1", "c2"]
        assert session.query(ConnectionRow).filter_by(conn_id="c1").one().host == "api.example"


def test_environment_overrides_as_uri_or_json_win_over_the_db(env: Env) -> None:
    env.cli("connections", "add", "warehouse", "--conn-uri", "postgresql://db-user:db-pw@db/app")
    env.vars["RABBITRUN_CONN_WAREHOUSE"] = "postgresql://env-user:env%2Fpw@env-host:6543/envdb"
    env.vars["RABBITRUN_CONN_ENVDB"] = json.dumps(
        {"conn_type": "mysql", "host": "h", "password": "pw", "extra": {"charset": "utf8"}}
    )
    access = build(env.settings(), session_factory(engine_of(env)))
    token = activate(access)
    try:
        warehouse = Connection.get("warehouse")
        assert (warehouse.host, warehouse.login, warehouse.password, warehouse.port) == (
            "env-host",
            "env-user",
            "env/pw",
            6543,
        )
        envdb = Connection.get("envdb")
        assert (envdb.conn_type, envdb.host, envdb.extra_dejson) == ("mysql", "h", {"charset": "utf8"})
        with pytest.raises(ConnectionNotFound, match="Connection nope does not exist"):
            Connection.get("nope")
    finally:
        deactivate(token)
    shown = json.loads(env.cli("connections", "get", "warehouse").stdout)
    assert shown["host"] == "env-host" and shown["password"] == "***"
