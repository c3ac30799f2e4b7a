"""Alembic environment: runs migrations on a synchronous engine for the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from imagegate.store.migrate import sync_url
from imagegate.store.tables import metadata

config = context.config


def run_migrations() -> None:
    url = sync_url(config.get_main_option("sqlalchemy.url") or "")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Several processes may start at once; one migrates, the others wait and find
                # nothing left to do.
                connection.execute(text("SELECT pg_advisory_xact_lock(7305820165)"))
            context.run_migrations()
    engine.dispose()


run_migrations()
