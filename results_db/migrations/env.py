"""Alembic environment: runs on the connection the store hands in."""

from __future__ import annotations

from alembic import context

from wattbench.results_db.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via `alembic` CLI, which we don't use
    raise RuntimeError("use `wattbench db upgrade`; the alembic CLI is not configured")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
