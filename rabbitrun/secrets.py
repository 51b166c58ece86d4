"""Fernet encryption at rest (with key rotation) and the masking of secret values in logs.

Keys: ``[core] fernet_key`` holds one key or a comma-separated list; the first
encrypts, any decrypts (MultiFernet), which is how rotation works: put the new
key first, run `rabbitrun rotate-fernet-key`, then drop the old one.

Masking: a :class:`SecretsMasker` holds the values to hide; its logging filter
replaces them by ``***`` in every record of an attempt's log (message, args,
exception text). A task registers extra values with :func:`mask_secret`, which
reaches the masker of the running attempt through a context variable.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import fields
from typing import Any
from urllib.parse import quote, urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from rabbitrun.errors import SecretsError
from rabbitrun.settings import Secret, Settings

MASK = "***"
_MIN_SECRET_LEN = 3  # masking "a" or "" would shred every log line


def generate_key() -> str:
    return Fernet.generate_key().decode()


class Cipher:
    """Encrypts with the first configured key, decrypts with any; no key means plaintext."""

    def __init__(self, fernet_key: str) -> None:
        keys = [k.strip() for k in str(fernet_key).split(",") if k.strip()]
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in keys]) if keys else None
        except (ValueError, TypeError) as exc:
            raise SecretsError(f"[core] fernet_key is not a valid Fernet key list: {exc}") from exc

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def encrypt(self, value: str) -> tuple[str, bool]:
        """(stored text, is_encrypted)."""
        if self._fernet is None:
            return value, False
        return self._fernet.encrypt(value.encode()).decode(), True

    def decrypt(self, stored: str, *, encrypted: bool, what: str) -> str:
        """Plain value of a stored field; ``what`` names it in the error ("variable api_key")."""
        if not encrypted:
            return stored
        if self._fernet is None:
            raise SecretsError(
                f"{what} is encrypted but no [core] fernet_key is configured (RABBITRUN__CORE__FERNET_KEY)"
            )
        try:
            return self._fernet.decrypt(stored.encode()).decode()
        except InvalidToken as exc:
            raise SecretsError(
                f"{what} cannot be decrypted with the configured fernet_key "
                "(wrong key, or the key it was encrypted with was removed)"
            ) from exc

    def rotate(self, stored: str, *, encrypted: bool, what: str) -> tuple[str, bool]:
        """Re-encrypt with the first key (plaintext rows get encrypted)."""
        if self._fernet is None:
            raise SecretsError("rotate-fernet-key needs [core] fernet_key to be set")
        if not encrypted:
            return self.encrypt(stored)
        try:
            return self._fernet.rotate(stored.encode()).decode(), True
        except InvalidToken as exc:
            raise SecretsError(f"{what} cannot be decrypted with any configured key") from exc


def is_sensitive(key: str, sensitive_names: Iterable[str]) -> bool:
    lowered = key.lower()
    return any(name.lower() in lowered for name in sensitive_names)


def sensitive_json_values(text: str, sensitive_names: Iterable[str]) -> list[str]:
    """The values under sensitive keys anywhere inside a JSON document (a JSON Variable whose own
    name is harmless, ``{"slack": {"token": "..."}}``); nothing when ``text`` is not JSON."""
    try:
        document = json.loads(text)
    except ValueError:
        return []
    names, found = tuple(sensitive_names), []

    def walk(node: Any, sensitive: bool) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, sensitive or is_sensitive(str(key), names))
        elif isinstance(node, list):
            for item in node:
                walk(item, sensitive)
        elif sensitive and node is not None and not isinstance(node, bool):
            found.append(str(node))

    walk(document, False)
    return found


def settings_masker(settings: Settings) -> SecretsMasker:
    """A masker of the configuration's own secrets (DB and broker passwords, the Fernet and control
    keys) for the logs of the scheduler and the worker."""
    masker = SecretsMasker()
    for section in (settings.core, settings.database, settings.broker, settings.control):
        for f in fields(section):
            value = getattr(section, f.name)
            if not isinstance(value, Secret) or not value:
                continue
            if "://" in value:  # a URL: its password is the secret, the rest is shown (masked) anyway
                masker.add(urlsplit(value).password)
            else:  # a key, or a comma-separated list of keys (Fernet rotation)
                for part in value.split(","):
                    masker.add(part.strip())
    return masker


class SecretsMasker:
    """The values one attempt must never show, and a logging filter that hides them."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: object) -> None:
        """Hide ``value``, and its percent-encoded and repr forms (a password inside a URI or a dict)."""
        text = str(value) if value is not None else ""
        if len(text) < _MIN_SECRET_LEN or text in self._values:
            return
        self._values.update({text, quote(text, safe=""), repr(text)[1:-1]})
        # a multi-line secret (a PEM key) is logged line by line too: each line is hidden on its own
        self._values.update(line.strip() for line in text.splitlines() if len(line.strip()) >= _MIN_SECRET_LEN)
        alternatives = sorted(self._values, key=len, reverse=True)  # longest first: no partial leftovers
        self._pattern = re.compile("|".join(re.escape(v) for v in alternatives))

    def redact(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None and text else text

    def filter(self) -> logging.Filter:
        return _MaskingFilter(self)


class _MaskingFilter(logging.Filter):
    """Render the record, then mask: secrets in args or tracebacks are hidden too."""

    def __init__(self, masker: SecretsMasker) -> None:
        super().__init__()
        self._masker = masker

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = self._masker.redact(message), None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = self._masker.redact(text), None
        elif record.exc_text:
            record.exc_text = self._masker.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._masker.redact(record.stack_info)
        return True


_current: contextvars.ContextVar[SecretsMasker | None] = contextvars.ContextVar("rabbitrun_masker", default=None)


def use_masker(masker: SecretsMasker | None) -> contextvars.Token[SecretsMasker | None]:
    return _current.set(masker)


def reset_masker(token: contextvars.Token[SecretsMasker | None]) -> None:
    _current.reset(token)


def mask_secret(value: object) -> None:
    """Hide ``value`` in the running attempt's log (as Airflow's ``mask_secret``); no-op outside one."""
    masker = _current.get()
    if masker is not None:
        masker.add(value)


def current_masker() -> SecretsMasker | None:
    return _current.get()
