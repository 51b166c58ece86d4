"""Variables and Connections at rest: Fernet encryption, wrong keys and rotation, on a real DB."""

from __future__ import annotations

import json

from rabbitrun.models.tables import ConnectionRow, VariableRow
from rabbitrun.secrets import generate_key
from tests.support.env import Env
from tests.support.secrets import SECRET_URI, raw_session


def test_db_init_generates_a_private_fernet_key_and_no_secret_is_stored_in_clear(env: Env) -> None:
    config = env.home / "rabbitrun.toml"
    assert "fernet_key" in config.read_text() and config.stat().st_mode & 0o777 == 0o600
    assert env.cli("db", "init").stdout.count("generated a Fernet key") == 0  # once only: the key is kept
    assert env.cli("variables", "set", "api_key", "s3cr3t-value").returncode == 0
    assert env.cli("variables", "set", "color", "blue").returncode == 0
    assert env.cli("connections", "add", "secret_db", "--conn-uri", SECRET_URI).returncode == 0
    with raw_session(env) as session:
        variables = {v.key: v for v in session.query(VariableRow)}
        conn = session.query(ConnectionRow).filter_by(conn_id="secret_db").one()
    assert all(v.is_encrypted for v in variables.values())
    assert "s3cr3t" not in variables["api_key"].val and "blue" not in variables["color"].val
    assert conn.is_encrypted and conn.is_extra_encrypted
    assert "Pa55" not in (conn.password or "") and "sslmode" not in (conn.extra or "")
    assert (conn.host, conn.login) == ("db.example", "svc")  # only the secrets are encrypted
    listing = env.cli("variables", "list").stdout + env.cli("connections", "list").stdout
    assert "s3cr3t" not in listing and "Pa55" not in listing and "***" in listing
    assert env.cli("variables", "get", "api_key").stdout.strip() == "s3cr3t-value"


def test_a_wrong_or_missing_key_is_a_clear_error_naming_the_row(env: Env) -> None:
    env.cli("variables", "set", "api_key", "s3cr3t-value")
    env.cli("connections", "add", "secret_db", "--conn-uri", SECRET_URI)
    env.vars["RABBITRUN__CORE__FERNET_KEY"] = generate_key()
    wrong = env.cli("variables", "get", "api_key")
    assert wrong.returncode == 2 and "variable api_key cannot be decrypted" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    bad_conn = env.cli("connections", "get", "secret_db")
    assert bad_conn.returncode == 2 and "connection secret_db cannot be decrypted" in bad_conn.stderr
    (env.home / "rabbitrun.toml").write_text("")  # no key anywhere
    env.vars["RABBITRUN__CORE__FERNET_KEY"] = ""
    missing = env.cli("variables", "list")
    assert missing.returncode == 2 and "variable api_key is encrypted but no [core] fernet_key" in missing.stderr


def test_rotation_re_encrypts_every_row_with_the_first_key(env: Env) -> None:
    env.cli("variables", "set", "api_key", "s3cr3t-value")
    env.cli("connections", "add", "secret_db", "--conn-uri", SECRET_URI)
    old_key = env.settings().core.fernet_key
    with raw_session(env) as session:
        before = session.query(VariableRow).one().val
    new_key = generate_key()
    env.vars["RABBITRUN__CORE__FERNET_KEY"] = f"{new_key},{old_key}"
    rotated = env.cli("rotate-fernet-key")
    assert rotated.returncode == 0 and "1 variable(s) and 1 connection(s)" in rotated.stdout
    with raw_session(env) as session:
        assert session.query(VariableRow).one().val != before
    env.vars["RABBITRUN__CORE__FERNET_KEY"] = new_key  # the old key is gone: rows still readable
    assert env.cli("variables", "get", "api_key").stdout.strip() == "s3cr3t-value"
    conn = json.loads(env.cli("connections", "get", "secret_db", "--show-password").stdout)
    assert conn["password"] == "Pa55-w0rd-zz" and json.loads(conn["extra"]) == {"sslmode": "require"}
    env.vars["RABBITRUN__CORE__FERNET_KEY"] = old_key  # and the old key alone no longer reads them
    assert "cannot be decrypted" in env.cli("variables", "get", "api_key").stderr
