"""Schema migrations with Alembic, driven from code (no ``alembic.ini`` to find).

``imagegate migrate`` and ``imagegate serve`` call ``upgrade(url)``; Alembic itself is synchronous,
so the async driver in the URL is swapped for its synchronous sibling while migrating.

Running it from several processes at once is safe: the migration environment
(``migrations/env.py``) serialises them on PostgreSQL's advisory lock ``MIGRATION_LOCK_KEY`` or
on the SQLite file's write lock, and the processes that waited find nothing left to do.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

__all__ = [
    "MIGRATION_LOCK_KEY",
    "SQLITE_LOCK_TIMEOUT_SECONDS",
    "alembic_config",
    "sync_url",
    "upgrade",
    "upgrade_sync",
]

MIGRATIONS = Path(__file__).with_name("migrations")

MIGRATION_LOCK_KEY = 7305820165
"""The PostgreSQL advisory lock every migrating process takes (a fixed, arbitrary number)."""

SQLITE_LOCK_TIMEOUT_SECONDS = 120.0
"""How long a migrating process waits for another one's SQLite write lock."""


def sync_url(url: str) -> str:
    """``sqlite+aiosqlite:///x`` → ``sqlite:///x``; psycopg 3 URLs serve both worlds unchanged."""
    parsed = make_url(url)
    if parsed.drivername == "sqlite+aiosqlite":
        parsed = parsed.set(drivername="sqlite")
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return parsed.render_as_string(hide_password=False)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_sync(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe to run on every start and from several processes."""
    await asyncio.to_thread(upgrade_sync, url, revision)
