"""Connection URIs, the secrets masker and the cipher: pure, no DB."""

from __future__ import annotations

import logging

import pytest

from rabbitrun.connections import Connection, from_env_value
from rabbitrun.errors import SecretsError
from rabbitrun.secrets import Cipher, SecretsMasker, generate_key, is_sensitive


def test_uri_is_percent_decoded_into_fields_and_rendered_back() -> None:
    conn = Connection.from_uri("db", "postgresql://user:p%40ss@db:5432/app?sslmode=require")
    assert (conn.conn_type, conn.host, conn.port, conn.schema, conn.login, conn.password) == (
        "postgresql", "db", 5432, "app", "user", "p@ss")
    assert conn.extra_dejson == {"sslmode": "require"}
    assert Connection.from_uri("db", conn.get_uri()) == conn
    assert conn.get_uri(mask_password=True) == "postgresql://user:***@db:5432/app?sslmode=require"


def test_nested_extra_survives_a_round_trip_through_the_uri() -> None:
    conn = Connection("c", "http", "h", extra='{"headers": {"a": 1}}')
    assert Connection.from_uri("c", conn.get_uri()).extra_dejson == {"headers": {"a": 1}}


def test_env_value_may_be_json_or_uri_and_bad_values_say_so() -> None:
    assert from_env_value("x", '{"conn_type": "redis", "host": "r", "extra": {"db": 1}}').extra_dejson == {"db": 1}
    assert from_env_value("x", "redis://r:6379/0").port == 6379
    with pytest.raises(SecretsError, match="not a URI"):
        from_env_value("x", "just-text")
    with pytest.raises(SecretsError, match="neither a URI nor valid JSON"):
        from_env_value("x", "{broken")


def test_masker_hides_values_in_messages_args_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    masker = SecretsMasker()
    masker.add("hunter2")
    masker.add("a")  # too short to mask
    logger = logging.getLogger("test.masking")
    handler = logging.Handler()
    records: list[str] = []
    handler.emit = lambda r: records.append(logging.Formatter().format(r))  # type: ignore[method-assign]
    handler.addFilter(masker.filter())
    logger.addHandler(handler)
    try:
        logger.warning("password is %s", "hunter2")
        try:
            raise ValueError("boom hunter2")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert records[0] == "password is ***"
    assert "hunter2" not in records[1] and "ValueError: boom ***" in records[1]
    assert masker.redact("a cat") == "a cat"


def test_sensitive_names_match_case_insensitively_inside_keys() -> None:
    names = ("password", "api_key", "secret")
    assert is_sensitive("MY_API_KEY", names) and is_sensitive("db_password", names)
    assert not is_sensitive("color", names)


def test_cipher_encrypts_with_first_key_and_decrypts_with_any() -> None:
    old, new = generate_key(), generate_key()
    stored, encrypted = Cipher(old).encrypt("v")
    assert encrypted and Cipher(f"{new},{old}").decrypt(stored, encrypted=True, what="variable v") == "v"
    rotated, _ = Cipher(f"{new},{old}").rotate(stored, encrypted=True, what="variable v")
    assert Cipher(new).decrypt(rotated, encrypted=True, what="variable v") == "v"
    with pytest.raises(SecretsError, match="variable v cannot be decrypted"):
        Cipher(old).decrypt(rotated, encrypted=True, what="variable v")
    with pytest.raises(SecretsError, match="no \\[core\\] fernet_key"):
        Cipher("").decrypt(stored, encrypted=True, what="variable v")
    assert Cipher("").encrypt("plain") == ("plain", False)
