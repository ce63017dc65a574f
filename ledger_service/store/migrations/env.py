"""Alembic environment: runs on the connection handed in by `store.migrate.upgrade`."""

from alembic import context

from ledger_service.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only `alembic` on the command line
    import os

    from sqlalchemy import create_engine

    connection = create_engine(os.environ["DATABASE_URL"]).connect()

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
