"""Alembic environment: runs migrations on a synchronous engine for the configured URL.

Several processes may migrate at once (every node runs ``imagegate migrate`` or ``serve`` on a
release). Each engine serialises them its own way, and in both the one that waited finds the
schema already at head and does nothing:

- PostgreSQL: a transaction-level advisory lock on a fixed key, taken before Alembic reads the
  version table; released when the migration commits or its connection dies.
- SQLite: the database file's own write lock. pysqlite opens no transaction before DDL, so the
  driver's transaction handling is switched off and every transaction starts ``BEGIN IMMEDIATE``;
  the DDL then runs inside it (SQLite's DDL is transactional) and a second migrator waits.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Engine, create_engine, event, pool, text
from sqlalchemy.engine import make_url

from imagegate.store.migrate import MIGRATION_LOCK_KEY, SQLITE_LOCK_TIMEOUT_SECONDS, sync_url
from imagegate.store.tables import metadata

config = context.config


def _engine(url: str) -> Engine:
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, poolclass=pool.NullPool)
    engine = create_engine(
        url, poolclass=pool.NullPool, connect_args={"timeout": SQLITE_LOCK_TIMEOUT_SECONDS}
    )

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def run_migrations() -> None:
    engine = _engine(sync_url(config.get_main_option("sqlalchemy.url") or ""))
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            transactional_ddl=True,
            compare_type=True,
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            context.run_migrations()
    engine.dispose()


run_migrations()
