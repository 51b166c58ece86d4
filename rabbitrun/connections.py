"""Connections: the value type with URI parsing and rendering, and the store behind it.

Lookup order: ``RABBITRUN_CONN_<CONN_ID>`` (a URI or a JSON object; wins) ->
metadata DB. Passwords and extras are encrypted at rest; a password read by a
task is masked in its log.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from rabbitrun.errors import ConnectionNotFound, SecretsError
from rabbitrun.models.tables import ConnectionRow
from rabbitrun.models.variables import get_connection_row
from rabbitrun.secrets import Cipher, SecretsMasker
from rabbitrun.settings import Settings


@dataclass(frozen=True)
class Connection:
    conn_id: str
    conn_type: str = ""
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = None
    port: int | None = None
    extra: str | None = None  # JSON text, as in Airflow
    description: str | None = None

    @property
    def extra_dejson(self) -> dict[str, Any]:
        if not self.extra:
            return {}
        try:
            value = json.loads(self.extra)
        except ValueError as exc:
            raise SecretsError(f"connection {self.conn_id}: extra is not valid JSON") from exc
        return value if isinstance(value, dict) else {}

    @classmethod
    def from_uri(cls, conn_id: str, uri: str) -> Connection:
        """``postgresql://user:p%40ss@db:5432/app?sslmode=require`` -> fields (percent-decoded)."""
        parts = urlsplit(uri)
        if not parts.scheme:
            raise SecretsError(f"connection {conn_id}: {uri!r} is not a URI (scheme://...)")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        extra = query.pop("__extra__", None) or (json.dumps(query) if query else None)
        try:
            port = parts.port
        except ValueError as exc:
            raise SecretsError(f"connection {conn_id}: bad port in URI") from exc
        return cls(
            conn_id=conn_id, conn_type=parts.scheme.replace("-", "_"),
            host=unquote(parts.hostname) if parts.hostname else None,
            schema=unquote(parts.path.lstrip("/")) or None,
            login=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            port=port, extra=extra,
        )

    def get_uri(self, *, mask_password: bool = False) -> str:
        auth = ""
        if self.login or self.password:
            secret = "***" if mask_password else quote(self.password or "", safe="")
            auth = quote(self.login or "", safe="") + (f":{secret}" if self.password else "") + "@"
        host = (self.host or "") + (f":{self.port}" if self.port else "")
        uri = f"{self.conn_type.replace('_', '-')}://{auth}{host}"
        if self.schema:
            uri += "/" + quote(self.schema, safe="")
        extra = self.extra_dejson
        if extra:
            flat = all(isinstance(v, str) for v in extra.values())
            uri += "?" + (urlencode(extra) if flat else urlencode({"__extra__": json.dumps(extra)}))
        return uri

    def masked(self) -> Connection:
        return replace(self, password="***" if self.password else self.password)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def get(cls, conn_id: str) -> Connection:
        """The connection as the running attempt (or this process's settings) sees it."""
        from rabbitrun.runtime import current  # runtime builds the stores from this module

        return current().connections.get(conn_id)


def from_env_value(conn_id: str, value: str) -> Connection:
    """``RABBITRUN_CONN_<ID>``: a URI, or a JSON object of the fields."""
    text = value.strip()
    if text.startswith("{"):
        try:
            fields = json.loads(text)
        except ValueError as exc:
            raise SecretsError(f"RABBITRUN_CONN_{conn_id.upper()} is neither a URI nor valid JSON") from exc
        extra = fields.get("extra")
        if isinstance(extra, dict):
            fields["extra"] = json.dumps(extra)
        known = {k: v for k, v in fields.items() if k in Connection.__dataclass_fields__ and k != "conn_id"}
        return Connection(conn_id=conn_id, **known)
    return Connection.from_uri(conn_id, text)


class ConnectionStore:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], cipher: Cipher,
                 masker: SecretsMasker | None = None) -> None:
        self._settings, self._sessions, self._cipher, self._masker = settings, sessions, cipher, masker
        self._cache: dict[str, Connection] = {}

    def get(self, conn_id: str) -> Connection:
        conn = self._cache.get(conn_id) or self._load(conn_id)
        self._cache[conn_id] = conn
        if self._masker is not None and conn.password:
            self._masker.add(conn.password)
        return conn

    def _load(self, conn_id: str) -> Connection:
        env = self._settings.env_connections.get(conn_id.lower())
        if env is not None:
            return from_env_value(conn_id, env)
        with self._sessions() as session:
            row = get_connection_row(session, conn_id)
            if row is None:
                raise ConnectionNotFound(conn_id)
            return self._from_row(row)

    def _from_row(self, row: ConnectionRow) -> Connection:
        what = f"connection {row.conn_id}"
        password = (self._cipher.decrypt(row.password, encrypted=row.is_encrypted, what=what)
                    if row.password is not None else None)
        extra = (self._cipher.decrypt(row.extra, encrypted=row.is_extra_encrypted, what=what)
                 if row.extra is not None else None)
        return Connection(row.conn_id, row.conn_type, row.host, row.schema, row.login, password, row.port, extra,
                          row.description)

    def add(self, conn: Connection, *, replace_existing: bool = False) -> None:
        if conn.extra:
            conn.extra_dejson  # noqa: B018 - validates the JSON before storing it
        with self._sessions() as session:
            row = get_connection_row(session, conn.conn_id)
            if row is not None and not replace_existing:
                raise SecretsError(f"connection {conn.conn_id} already exists (delete it first)")
            if row is None:
                row = ConnectionRow(conn_id=conn.conn_id)
                session.add(row)
            row.conn_type, row.host, row.schema, row.login, row.port = (conn.conn_type, conn.host, conn.schema,
                                                                        conn.login, conn.port)
            row.description = conn.description
            row.password, row.is_encrypted = (self._cipher.encrypt(conn.password) if conn.password is not None
                                              else (None, False))
            row.extra, row.is_extra_encrypted = (self._cipher.encrypt(conn.extra) if conn.extra is not None
                                                 else (None, False))
            session.commit()
        self._cache.pop(conn.conn_id, None)

    def delete(self, conn_id: str) -> bool:
        with self._sessions() as session:
            row = get_connection_row(session, conn_id)
            if row is None:
                return False
            session.delete(row)
            session.commit()
        self._cache.pop(conn_id, None)
        return True

    def list(self) -> list[Connection]:
        with self._sessions() as session:
            rows = session.execute(select(ConnectionRow).order_by(ConnectionRow.conn_id)).scalars().all()
            return [self._from_row(r) for r in rows]

    def export(self) -> dict[str, dict[str, Any]]:
        return {c.conn_id: {k: v for k, v in c.as_dict().items() if k != "conn_id"} for c in self.list()}

    def import_(self, data: dict[str, dict[str, Any]]) -> int:
        for conn_id, fields in data.items():
            self.add(from_env_value(conn_id, json.dumps(fields)), replace_existing=True)
        return len(data)

    def rotate(self) -> int:
        with self._sessions() as session:
            rows = session.execute(select(ConnectionRow)).scalars().all()
            for row in rows:
                what = f"connection {row.conn_id}"
                if row.password is not None:
                    row.password, row.is_encrypted = self._cipher.rotate(row.password, encrypted=row.is_encrypted,
                                                                         what=what)
                if row.extra is not None:
                    row.extra, row.is_extra_encrypted = self._cipher.rotate(
                        row.extra, encrypted=row.is_extra_encrypted, what=what)
            session.commit()
            return len(rows)
