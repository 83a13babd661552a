"""Alembic environment: runs every package's migration branch on the connection it is given."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - migrations always run through config.database
    raise RuntimeError("run migrations with `altcredit db upgrade`, which passes a connection")

context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
