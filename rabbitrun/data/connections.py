"""Connections: the value type with URI parsing and rendering, and the store behind it.

Lookup order: ``RABBITRUN_CONN_<CONN_ID>`` (a URI or a JSON object; wins) ->
metadata DB. Passwords and extras are encrypted at rest; a password read by a
task is masked in its log.

``rabbitrun.Connection`` (with Airflow's ``Connection.get``) is the subclass in
:mod:`rabbitrun.data.access`, which sits above this store; the store builds
whatever subclass it is given, so what a task reads is a ``rabbitrun.Connection``.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from rabbitrun.errors import ConnectionNotFound, SecretsError
from rabbitrun.secrets import MASK, Cipher, SecretsMasker, is_sensitive
from rabbitrun.settings import Settings

if TYPE_CHECKING:  # the DB types; imported where a store uses the DB (a task process never does)
    from sqlalchemy.orm import Session, sessionmaker

    from rabbitrun.models.tables import ConnectionRow

# Types an Airflow user writes (URI schemes, normalised "-" -> "_"); more via [core] extra_conn_types.
KNOWN_CONN_TYPES = frozenset(
    {
        "amqp",
        "amqps",
        "aws",
        "azure",
        "azure_blob_storage",
        "cassandra",
        "databricks",
        "docker",
        "elasticsearch",
        "email",
        "fs",
        "ftp",
        "ftps",
        "generic",
        "google_cloud_platform",
        "grpc",
        "hive",
        "hiveserver2",
        "http",
        "https",
        "imap",
        "jdbc",
        "kafka",
        "kubernetes",
        "ldap",
        "mongo",
        "mongodb",
        "mssql",
        "mysql",
        "odbc",
        "oracle",
        "postgres",
        "postgresql",
        "redis",
        "rediss",
        "s3",
        "samba",
        "sftp",
        "slack",
        "smtp",
        "smtps",
        "snowflake",
        "sqlite",
        "ssh",
        "trino",
        "presto",
        "vertica",
        "wasb",
        "webhdfs",
    }
)
# extra fields hidden in listings and task logs (besides [core] sensitive_var_conn_names in logs)
SENSITIVE_EXTRA_KEYS = (
    "password",
    "secret",
    "passwd",
    "authorization",
    "api_key",
    "apikey",
    "access_token",
    "private_key",
    "token",
)


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
            conn_id=conn_id,
            conn_type=parts.scheme.replace("-", "_"),
            host=unquote(parts.hostname) if parts.hostname else None,
            schema=unquote(parts.path.lstrip("/")) or None,
            login=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            port=port,
            extra=extra,
        )

    def get_uri(self, *, mask_password: bool = False) -> str:
        auth = ""
        if self.login or self.password:
            secret = "***" if mask_password else quote(self.password or "", safe="")
            auth = quote(self.login or "", safe="") + (f":{secret}" if self.password else "") + "@"
        host = f"[{self.host}]" if self.host and ":" in self.host else (self.host or "")
        host += f":{self.port}" if self.port else ""
        uri = f"{self.conn_type.replace('_', '-')}://{auth}{host}"
        if self.schema:
            uri += "/" + quote(self.schema, safe="")
        extra = self.extra_dejson
        if mask_password:  # a listing shows no secret of the extra either (e.g. {"api_key": ...})
            extra = {k: MASK if is_sensitive(k, SENSITIVE_EXTRA_KEYS) else v for k, v in extra.items()}
        if extra:
            flat = all(isinstance(v, str) for v in extra.values())
            uri += "?" + (urlencode(extra) if flat else urlencode({"__extra__": json.dumps(extra)}))
        return uri

    def masked(self, sensitive_names: Iterable[str] = ()) -> Connection:
        """A copy fit for listings: the password, and extra fields with sensitive names, as ``***``."""
        names = tuple(sensitive_names) or SENSITIVE_EXTRA_KEYS
        extra = self.extra
        if self.extra and any(is_sensitive(k, names) for k in self.extra_dejson):
            extra = json.dumps({k: MASK if is_sensitive(k, names) else v for k, v in self.extra_dejson.items()})
        return replace(self, password=MASK if self.password else self.password, extra=extra)

    def secret_values(self, sensitive_names: Iterable[str]) -> list[str]:
        """What a task log must hide once this connection was read: the password, sensitive extras."""
        names = tuple(sensitive_names)
        extras = [str(v) for k, v in self.extra_dejson.items() if is_sensitive(k, names)] if self.extra else []
        return ([self.password] if self.password else []) + extras

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_FIELDS = {f.name for f in fields(Connection)} - {"conn_id"}

C = TypeVar("C", bound=Connection)


def check_conn_type(conn: Connection, extra_types: Iterable[str] = ()) -> None:
    """An unknown type is a typo until configured otherwise ([core] extra_conn_types)."""
    known = KNOWN_CONN_TYPES | {t.replace("-", "_") for t in extra_types}
    if conn.conn_type not in known:
        match = difflib.get_close_matches(conn.conn_type, sorted(known), n=1)
        hint = f"; did you mean {match[0]!r}?" if match else ""
        raise SecretsError(
            f"connection {conn.conn_id}: unknown conn_type {conn.conn_type!r}{hint} "
            "(add it to [core] extra_conn_types to allow it)"
        )


def from_fields(conn_id: str, data: Any) -> Connection:
    """An import entry or JSON override: a URI string, or an object of the fields (extra as object or text)."""
    if isinstance(data, str):
        return Connection.from_uri(conn_id, data)
    if not isinstance(data, dict):
        raise SecretsError(f"connection {conn_id}: expected a URI or an object of fields, got {type(data).__name__}")
    unknown = sorted(set(data) - _FIELDS - {"conn_id"})
    if unknown:
        raise SecretsError(f"connection {conn_id}: unknown field(s) {unknown}; valid: {sorted(_FIELDS)}")
    values = dict(data)
    values.pop("conn_id", None)
    if isinstance(values.get("extra"), dict):
        values["extra"] = json.dumps(values["extra"])
    if values.get("port") == "":
        values["port"] = None
    elif values.get("port") is not None:
        try:
            values["port"] = int(values["port"])
        except (TypeError, ValueError) as exc:
            raise SecretsError(f"connection {conn_id}: port {values['port']!r} is not a number") from exc
    conn = Connection(conn_id=conn_id, **values)
    if conn.extra:
        conn.extra_dejson  # noqa: B018 - validates the JSON
    return conn


def from_env_value(conn_id: str, value: str) -> Connection:
    """``RABBITRUN_CONN_<ID>``: a URI, or a JSON object of the fields."""
    text = value.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise SecretsError(f"RABBITRUN_CONN_{conn_id.upper()} is neither a URI nor valid JSON") from exc
        return from_fields(conn_id, data)
    return Connection.from_uri(conn_id, text)


class ConnectionStore(Generic[C]):
    """Reads build ``value_type`` (a :class:`Connection` subclass); writes take any Connection."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        cipher: Cipher,
        masker: SecretsMasker | None = None,
        *,
        value_type: type[C],
    ) -> None:
        self._settings, self._sessions, self._cipher, self._masker = settings, sessions, cipher, masker
        self._value_type = value_type
        self._cache: dict[str, C] = {}

    def get(self, conn_id: str) -> C:
        conn = self._cache.get(conn_id) or self._load(conn_id)
        self._cache[conn_id] = conn
        if self._masker is not None:
            for value in conn.secret_values(self._settings.core.sensitive_var_conn_names + SENSITIVE_EXTRA_KEYS):
                self._masker.add(value)
        return conn

    def _load(self, conn_id: str) -> C:
        from rabbitrun.models.variables import get_connection_row

        env = self._settings.env_connections.get(conn_id.lower())
        if env is not None:
            return self._value_type(**from_env_value(conn_id, env).as_dict())
        with self._sessions() as session:
            row = get_connection_row(session, conn_id)
            if row is None:
                raise ConnectionNotFound(conn_id)
            return self._from_row(row)

    def _from_row(self, row: ConnectionRow) -> C:
        what = f"connection {row.conn_id}"
        password = (
            self._cipher.decrypt(row.password, encrypted=row.is_encrypted, what=what)
            if row.password is not None
            else None
        )
        extra = (
            self._cipher.decrypt(row.extra, encrypted=row.is_extra_encrypted, what=what)
            if row.extra is not None
            else None
        )
        return self._value_type(
            row.conn_id, row.conn_type, row.host, row.schema, row.login, password, row.port, extra, row.description
        )

    def add(self, conn: Connection, *, replace_existing: bool = False) -> None:
        self.add_many([conn], replace_existing=replace_existing)

    def add_many(self, conns: list[Connection], *, replace_existing: bool = False) -> None:
        """Validate every connection, then write them in one transaction: all or nothing."""
        from rabbitrun.models.tables import ConnectionRow
        from rabbitrun.models.variables import get_connection_row

        for conn in conns:
            check_conn_type(conn, self._settings.core.extra_conn_types)
            if conn.extra:
                conn.extra_dejson  # noqa: B018 - validates the JSON before storing it
        with self._sessions() as session:
            for conn in conns:
                row = get_connection_row(session, conn.conn_id)
                if row is not None and not replace_existing:
                    raise SecretsError(f"connection {conn.conn_id} already exists (delete it first)")
                if row is None:
                    row = ConnectionRow(conn_id=conn.conn_id)
                    session.add(row)
                row.conn_type, row.host, row.schema, row.login, row.port = (
                    conn.conn_type,
                    conn.host,
                    conn.schema,
                    conn.login,
                    conn.port,
                )
                row.description = conn.description
                row.password, row.is_encrypted = (
                    self._cipher.encrypt(conn.password) if conn.password is not None else (None, False)
                )
                row.extra, row.is_extra_encrypted = (
                    self._cipher.encrypt(conn.extra) if conn.extra is not None else (None, False)
                )
                session.flush()  # a later duplicate conn_id in the same batch sees this row
            session.commit()
        for conn in conns:
            self._cache.pop(conn.conn_id, None)

    def delete(self, conn_id: str) -> bool:
        from rabbitrun.models.variables import get_connection_row

        with self._sessions() as session:
            row = get_connection_row(session, conn_id)
            if row is None:
                return False
            session.delete(row)
            session.commit()
        self._cache.pop(conn_id, None)
        return True

    def list(self) -> list[C]:
        from sqlalchemy import select

        from rabbitrun.models.tables import ConnectionRow

        with self._sessions() as session:
            rows = session.execute(select(ConnectionRow).order_by(ConnectionRow.conn_id)).scalars().all()
            return [self._from_row(r) for r in rows]

    def export(self) -> dict[str, dict[str, Any]]:
        return {c.conn_id: {k: v for k, v in c.as_dict().items() if k != "conn_id"} for c in self.list()}

    def import_(self, data: dict[str, Any]) -> int:
        """{conn_id: URI or {fields}}, replacing existing ones; all or nothing."""
        self.add_many([from_fields(conn_id, entry) for conn_id, entry in data.items()], replace_existing=True)
        return len(data)

    def rotate(self) -> int:
        from sqlalchemy import select

        from rabbitrun.models.tables import ConnectionRow

        with self._sessions() as session:
            rows = session.execute(select(ConnectionRow)).scalars().all()
            for row in rows:
                what = f"connection {row.conn_id}"
                if row.password is not None:
                    row.password, row.is_encrypted = self._cipher.rotate(
                        row.password, encrypted=row.is_encrypted, what=what
                    )
                if row.extra is not None:
                    row.extra, row.is_extra_encrypted = self._cipher.rotate(
                        row.extra, encrypted=row.is_extra_encrypted, what=what
                    )
            session.commit()
            return len(rows)
