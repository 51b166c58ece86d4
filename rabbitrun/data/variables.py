"""Variables: read, write, list, import/export and rotate, encrypted at rest, masked when sensitive.

Lookup order: ``RABBITRUN_VAR_<KEY>`` (environment, wins) -> metadata DB.
One :class:`VariableStore` serves one task attempt (or one CLI call), and caches
what it read: a variable read twice in one attempt hits the DB once. Airflow's
``Variable`` facade is in :mod:`rabbitrun.data.access`, above this store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rabbitrun.errors import SecretsError, VariableNotFound
from rabbitrun.secrets import Cipher, SecretsMasker, is_sensitive, sensitive_json_values
from rabbitrun.settings import Settings

if TYPE_CHECKING:  # the DB types; imported where a store uses the DB (a task process never does)
    from sqlalchemy.orm import Session, sessionmaker

#: ``default_var`` when none was given (None is a valid default).
MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class VariableInfo:
    key: str
    value: str
    description: str | None
    is_encrypted: bool


class VariableStore:
    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], cipher: Cipher, masker: SecretsMasker | None = None
    ) -> None:
        self._settings, self._sessions, self._cipher, self._masker = settings, sessions, cipher, masker
        self._cache: dict[str, str | None] = {}

    def _raw(self, key: str) -> str | None:
        from rabbitrun.models.variables import get_variable_row

        env = self._settings.env_variables.get(key.lower())
        if env is not None:
            return env
        if key not in self._cache:
            with self._sessions() as session:
                row = get_variable_row(session, key)
                self._cache[key] = (
                    None
                    if row is None
                    else self._cipher.decrypt(row.val, encrypted=row.is_encrypted, what=f"variable {key}")
                )
        return self._cache[key]

    def get(self, key: str, default_var: Any = MISSING, deserialize_json: bool = False) -> Any:
        value = self._raw(key)
        if value is None:
            if default_var is not MISSING:
                return default_var
            raise VariableNotFound(key)
        self._mask_if_sensitive(key, value)
        if not deserialize_json:
            return value
        try:
            return json.loads(value)
        except ValueError as exc:
            raise SecretsError(f"variable {key} is not valid JSON (read it without deserialize_json)") from exc

    def _mask_if_sensitive(self, key: str, value: str) -> None:
        if self._masker is None:
            return
        names = self._settings.core.sensitive_var_conn_names
        if is_sensitive(key, names):
            self._masker.add(value)
        for secret in sensitive_json_values(value, names):  # {"slack": {"token": ...}} under any name
            self._masker.add(secret)

    def set(self, key: str, value: Any, serialize_json: bool = False, description: str | None = None) -> None:
        self.set_many({key: (value, serialize_json, description)})

    def set_many(self, entries: dict[str, tuple[Any, bool, str | None]]) -> None:
        """Write {key: (value, serialize_json, description)} in one transaction: all or nothing."""
        texts: dict[str, str] = {}
        for key, (value, serialize_json, _) in entries.items():
            if not key:
                raise SecretsError("a variable key must not be empty")
            try:
                texts[key] = json.dumps(value) if serialize_json else str(value)
            except (TypeError, ValueError) as exc:
                raise SecretsError(f"variable {key}: value is not JSON-serialisable ({exc})") from exc
        self._write({key: (text, entries[key][2]) for key, text in texts.items()})
        for key, text in texts.items():
            self._cache[key] = text
            self._mask_if_sensitive(key, text)

    def _write(self, texts: dict[str, tuple[str, str | None]]) -> None:
        """Store {key: (text, description)}, encrypted, in one transaction."""
        from rabbitrun.models.variables import put_variable_row

        with self._sessions() as session:
            for key, (text, description) in texts.items():
                stored, encrypted = self._cipher.encrypt(text)
                put_variable_row(session, key, stored, description=description, is_encrypted=encrypted)
            session.commit()

    def delete(self, key: str) -> bool:
        from rabbitrun.models.variables import delete_variable_row

        with self._sessions() as session:
            deleted = delete_variable_row(session, key)
            session.commit()
        self._cache.pop(key, None)
        return deleted

    def list(self) -> list[VariableInfo]:
        from sqlalchemy import select

        from rabbitrun.models.tables import VariableRow

        with self._sessions() as session:
            rows = session.execute(select(VariableRow).order_by(VariableRow.key)).scalars().all()
            return [
                VariableInfo(
                    r.key,
                    self._cipher.decrypt(r.val, encrypted=r.is_encrypted, what=f"variable {r.key}"),
                    r.description,
                    r.is_encrypted,
                )
                for r in rows
            ]

    def export(self) -> dict[str, Any]:
        """{key: value}; JSON-looking values are exported as JSON, like `airflow variables export`."""
        out: dict[str, Any] = {}
        for info in self.list():
            try:
                out[info.key] = json.loads(info.value)
            except ValueError:
                out[info.key] = info.value
        return out

    def import_(self, data: dict[str, Any]) -> int:
        """{key: value}: strings stored as they are, anything else as JSON; all or nothing."""
        self.set_many({key: (value, not isinstance(value, str), None) for key, value in data.items()})
        return len(data)

    def rotate(self) -> int:
        """Re-encrypt every row with the first key; returns how many rows were rewritten."""
        from sqlalchemy import select

        from rabbitrun.models.tables import VariableRow

        with self._sessions() as session:
            rows = session.execute(select(VariableRow)).scalars().all()
            for row in rows:
                row.val, row.is_encrypted = self._cipher.rotate(
                    row.val, encrypted=row.is_encrypted, what=f"variable {row.key}"
                )
            session.commit()
            return len(rows)


def masked_value(key: str, value: str, settings: Settings) -> str:
    """What a listing may show of a variable."""
    return "***" if is_sensitive(key, settings.core.sensitive_var_conn_names) else value
