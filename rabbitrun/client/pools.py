"""What `rabbitrun pools` asks of the metadata DB: settings in, plain values out, so tests call
these directly and the CLI only parses and renders."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rabbitrun.models.pools import PoolInfo
from rabbitrun.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session


def _session(settings: Settings) -> tuple[Engine, Session]:
    from rabbitrun.models.engine import make_engine, session_factory

    engine = make_engine(settings.database, pooled=False)
    return engine, session_factory(engine)()


def set_pool(settings: Settings, pool: str, slots: int, description: str | None = None) -> PoolInfo:
    """Create or resize a pool; returns it as `pools list` shows it."""
    from rabbitrun.models import pools
    from rabbitrun.models.engine import db_errors

    engine, session = _session(settings)
    with db_errors(engine), session:
        pools.set_pool(session, pool, slots, description)
        return next(p for p in pools.list_pools(session) if p.pool == pool)


def list_pools(settings: Settings) -> list[PoolInfo]:
    from rabbitrun.models import pools
    from rabbitrun.models.engine import db_errors

    engine, session = _session(settings)
    with db_errors(engine), session:
        return pools.list_pools(session)


def delete_pool(settings: Settings, pool: str) -> None:
    from rabbitrun.models import pools
    from rabbitrun.models.engine import db_errors

    engine, session = _session(settings)
    with db_errors(engine), session:
        pools.delete_pool(session, pool)
