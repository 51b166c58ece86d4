"""Connection URIs, JSON fields and type checks: pure, no DB."""

from __future__ import annotations

import json

import pytest

from rabbitrun.data.connections import Connection, check_conn_type, from_env_value, from_fields
from rabbitrun.errors import SecretsError


def test_uri_is_percent_decoded_into_fields_and_rendered_back() -> None:
    conn = Connection.from_uri("db", "postgresql://user:p%40ss@db:5432/app?sslmode=require")
    assert (conn.conn_type, conn.host, conn.port, conn.schema, conn.login, conn.password) == (
        "postgresql",
        "db",
        5432,
        "app",
        "user",
        "p@ss",
    )
    assert conn.extra_dejson == {"sslmode": "require"}
    assert Connection.from_uri("db", conn.get_uri()) == conn
    assert conn.get_uri(mask_password=True) == "postgresql://user:***@db:5432/app?sslmode=require"


@pytest.mark.parametrize(
    "conn",
    [
        Connection("c", "http", "h", extra='{"headers": {"a": 1}}'),
        Connection("c", "mysql", "db.example", "my/schema", "us:er", "p@ss w/rd:%", 3306),
        Connection("c", "postgres", "::1", None, "u", "pw", 5432),
        Connection("c", "google_cloud_platform", extra='{"project": "x y&z"}'),
    ],
)
def test_every_field_survives_a_round_trip_through_the_uri(conn: Connection) -> None:
    assert Connection.from_uri("c", conn.get_uri()) == conn


def test_env_value_may_be_json_or_uri_and_bad_values_say_so() -> None:
    assert from_env_value("x", '{"conn_type": "redis", "host": "r", "extra": {"db": 1}}').extra_dejson == {"db": 1}
    assert from_env_value("x", "redis://r:6379/0").port == 6379
    with pytest.raises(SecretsError, match="not a URI"):
        from_env_value("x", "just-text")
    with pytest.raises(SecretsError, match="neither a URI nor valid JSON"):
        from_env_value("x", "{broken")
    with pytest.raises(SecretsError, match="bad port"):
        from_env_value("x", "redis://r:notaport/0")


def test_import_entries_are_validated_field_by_field() -> None:
    assert from_fields("a", {"conn_type": "http", "port": "8080"}).port == 8080
    assert from_fields("a", "http://h:1").host == "h"
    with pytest.raises(SecretsError, match=r"connection a: unknown field\(s\) \['hots'\]"):
        from_fields("a", {"conn_type": "http", "hots": "h"})
    with pytest.raises(SecretsError, match="port 'eighty' is not a number"):
        from_fields("a", {"conn_type": "http", "port": "eighty"})
    with pytest.raises(SecretsError, match="expected a URI or an object"):
        from_fields("a", [1, 2])
    with pytest.raises(SecretsError, match="extra is not valid JSON"):
        from_fields("a", {"conn_type": "http", "extra": "{nope"})


def test_unknown_conn_type_is_refused_with_the_closest_known_one() -> None:
    with pytest.raises(SecretsError, match="unknown conn_type 'postgress'; did you mean 'postgres'"):
        check_conn_type(Connection("db", "postgress"))
    check_conn_type(Connection("db", "my_custom"), extra_types=("my-custom",))
    check_conn_type(Connection("db", "postgresql"))


def test_listings_hide_the_password_and_sensitive_extra_fields() -> None:
    conn = Connection("c", "http", "h", login="u", password="pw-123", extra='{"api_key": "k-456", "timeout": "3"}')
    masked = conn.masked()
    assert masked.password == "***" and json.loads(masked.extra or "") == {"api_key": "***", "timeout": "3"}
    uri = conn.get_uri(mask_password=True)
    assert "pw-123" not in uri and "k-456" not in uri and "timeout=3" in uri
    assert conn.secret_values(("api_key",)) == ["pw-123", "k-456"]
