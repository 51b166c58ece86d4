"""The Fernet cipher (MultiFernet rotation) and the secrets masker: pure, no DB."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from rabbitrun.errors import SecretsError
from rabbitrun.secrets import Cipher, SecretsMasker, generate_key, is_sensitive, mask_secret, reset_masker, use_masker


def _capture(masker: SecretsMasker) -> tuple[logging.Logger, logging.Handler, list[str]]:
    logger = logging.getLogger("test.masking")
    handler = logging.Handler()
    records: list[str] = []
    handler.emit = lambda r: records.append(logging.Formatter().format(r))  # type: ignore[method-assign]
    handler.addFilter(masker.filter())
    logger.addHandler(handler)
    return logger, handler, records


def test_masker_hides_values_in_messages_args_and_tracebacks() -> None:
    masker = SecretsMasker()
    masker.add("hunter2")
    masker.add("a")  # too short to mask
    logger, handler, records = _capture(masker)
    try:
        logger.warning("password is %s", "hunter2")
        try:
            raise ValueError("boom hunter2")
        except ValueError:
            logger.exception("failed")
        logger.warning("where", stack_info=True, extra={})
    finally:
        logger.removeHandler(handler)
    assert records[0] == "password is ***"
    assert "hunter2" not in records[1] and "ValueError: boom ***" in records[1]
    assert masker.redact("a cat") == "a cat"


def test_masker_hides_the_percent_encoded_and_repr_forms_too() -> None:
    masker = SecretsMasker()
    masker.add("p@ss w/rd")
    masker.add("it's")
    assert masker.redact("postgresql://u:p%40ss%20w%2Frd@h/db") == "postgresql://u:***@h/db"
    assert masker.redact(str({"pw": "p@ss w/rd", "q": "it's"})) == "{'pw': '***', 'q': \"***\"}"


def test_mask_secret_reaches_the_attempts_masker_only_inside_an_attempt() -> None:
    mask_secret("outside-value")  # no attempt: a no-op, not an error
    masker = SecretsMasker()
    token = use_masker(masker)
    try:
        mask_secret("inside-value")
    finally:
        reset_masker(token)
    assert masker.redact("inside-value outside-value") == "*** outside-value"


def test_sensitive_names_match_case_insensitively_inside_keys() -> None:
    names = ("password", "api_key", "secret")
    assert is_sensitive("MY_API_KEY", names) and is_sensitive("db_password", names)
    assert not is_sensitive("color", names)


def test_cipher_encrypts_with_first_key_and_decrypts_with_any() -> None:
    old, new = generate_key(), generate_key()
    stored, encrypted = Cipher(old).encrypt("v")
    assert encrypted and "v" != stored
    assert Cipher(f"{new},{old}").decrypt(stored, encrypted=True, what="variable v") == "v"
    rotated, _ = Cipher(f"{new}, {old}").rotate(stored, encrypted=True, what="variable v")
    assert Cipher(new).decrypt(rotated, encrypted=True, what="variable v") == "v"
    with pytest.raises(SecretsError, match="variable v cannot be decrypted"):
        Cipher(old).decrypt(rotated, encrypted=True, what="variable v")
    with pytest.raises(SecretsError, match="variable v is encrypted but no \\[core\\] fernet_key"):
        Cipher("").decrypt(stored, encrypted=True, what="variable v")
    assert Cipher("").encrypt("plain") == ("plain", False)
    assert Cipher(new).rotate("plain", encrypted=False, what="variable p")[1] is True


def test_a_malformed_key_or_rotation_without_a_key_is_a_clear_error() -> None:
    with pytest.raises(SecretsError, match="fernet_key is not a valid Fernet key"):
        Cipher("not-a-key")
    with pytest.raises(SecretsError, match="rotate-fernet-key needs"):
        Cipher("").rotate("x", encrypted=False, what="variable x")


def test_the_configuration_secrets_are_masked_in_process_logs(tmp_path: Path) -> None:
    """Issue 17 finding 4: DB and broker passwords, the Fernet and control keys never reach the
    scheduler's or worker's log."""
    from rabbitrun.secrets import settings_masker
    from rabbitrun.settings import load_settings

    env = {
        "RABBITRUN__DATABASE__URL": "postgresql+psycopg://u:db-pw-1@db/rr",
        "RABBITRUN__BROKER__URL": "amqp://u:broker-pw-2@rabbit/",
        "RABBITRUN__CORE__FERNET_KEY": "fernet-new-3,fernet-old-4",
        "RABBITRUN__CONTROL__SECRET_KEY": "control-key-5",
    }
    masker = settings_masker(load_settings(home=tmp_path, env=env, read_file=False))
    line = masker.redact("db-pw-1 broker-pw-2 fernet-new-3 fernet-old-4 control-key-5 host=rabbit")
    assert line == "*** *** *** *** *** host=rabbit"


def test_sensitive_values_inside_json_and_each_line_of_a_multiline_secret() -> None:
    from rabbitrun.secrets import SecretsMasker, sensitive_json_values

    doc = '{"slack": {"token": "t-1"}, "list": [{"password": "p-22"}], "name": "visible", "api": {"x": ["k-333"]}}'
    assert sensitive_json_values(doc, ("token", "password", "api")) == ["t-1", "p-22", "k-333"]
    assert sensitive_json_values("not json", ("token",)) == []
    masker = SecretsMasker()
    masker.add("line-one\nline-two")
    assert masker.redact("a line-two b") == "a *** b"
