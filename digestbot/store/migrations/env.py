"""Store stage: Alembic's environment, run by store.migrate on a connection it opens."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from digestbot.store import tables  # noqa: F401  (the tables autogenerate compares with)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    # SQLite alters a table by copying it: Alembic's batch mode does that for us.
    render_as_batch=connection.dialect.name == "sqlite",
    # Each revision commits or rolls back whole, SQLite included (migrate.py begins its
    # transactions itself, since pysqlite would not for DDL).
    transaction_per_migration=True,
    transactional_ddl=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
