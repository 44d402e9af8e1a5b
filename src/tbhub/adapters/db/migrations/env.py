"""Alembic environment: the connection comes from ``tbhub.adapters.db.store.upgrade``."""

from __future__ import annotations

from alembic import context

from tbhub.adapters.db.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when someone runs the alembic CLI by hand
    raise RuntimeError("run migrations with `tbhub db upgrade`")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
