"""What kind of database a URL names, in the plain forms the lean paths use without SQLAlchemy.

The lean DB access of ``dags trigger`` and the scheduler's wake-up both need to know
whether a URL is a plain SQLite file or a psycopg URL; they read it here, so neither
imports the other.
"""

from __future__ import annotations

_SQLITE = "sqlite:///"
_PSYCOPG = "postgresql+psycopg://"


def sqlite_file(url: str) -> str | None:
    """The file of a plain ``sqlite:///`` URL (no query options, not in memory); None otherwise."""
    if not url.startswith(_SQLITE) or "?" in url or url == _SQLITE + ":memory:":
        return None
    return url[len(_SQLITE) :]


def libpq_url(url: str) -> str | None:
    """The libpq form of a ``postgresql+psycopg://`` URL; None for anything else."""
    return "postgresql://" + url[len(_PSYCOPG) :] if url.startswith(_PSYCOPG) else None
