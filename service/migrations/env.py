"""Alembic environment: runs on the connection that ``service.schema.upgrade`` hands over (it holds the lock)."""

from alembic import context

from service.storage import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")  # SQLite alters tables by copying them
with context.begin_transaction():
    context.run_migrations()
