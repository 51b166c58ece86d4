"""Alembic environment: always run with a connection handed in by rabbitrun.models.migrate."""

from __future__ import annotations

from alembic import context

from rabbitrun.models import tables  # noqa: F401 - registers every table on Base.metadata
from rabbitrun.models.base import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
