"""The database handle: one engine per URL, transactions that behave alike on SQLite and PostgreSQL.

SQLite (the embedded default) runs in WAL mode with a busy timeout and foreign keys on; every
write transaction starts with ``BEGIN IMMEDIATE`` so two writers never deadlock on a lock upgrade
(the second waits up to the busy timeout instead). Reads use a separate engine with plain
``BEGIN``, which in WAL mode is a consistent snapshot that never blocks writers.

PostgreSQL (psycopg 3) uses one pooled engine for both; rows are claimed with
``FOR UPDATE SKIP LOCKED`` (see ``imagegate.queue.claims``).

Connection failures (server down, pool exhausted, SQLite locked past its timeout) surface as
``ServiceUnavailable`` so the API answers 503 with ``Retry-After`` instead of hanging or 500.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy.exc
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from imagegate.errors import ServiceUnavailable

__all__ = ["Database", "is_unavailable"]

SQLITE_BUSY_TIMEOUT_MS = 15_000


def is_unavailable(exc: BaseException) -> bool:
    """True for errors that mean "the database cannot be reached right now"."""
    if isinstance(exc, sqlalchemy.exc.IntegrityError):
        return False
    return isinstance(
        exc,
        sqlalchemy.exc.OperationalError
        | sqlalchemy.exc.InterfaceError
        | sqlalchemy.exc.TimeoutError
        | ConnectionError
        | TimeoutError,
    ) or (isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated)


def _sqlite_engine(url: str, begin: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver, so "begin" below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine


class Database:
    """Engines for one database URL, with ``transaction()`` for writes and ``read()`` for reads."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(url, "BEGIN IMMEDIATE")
            self._reader = _sqlite_engine(url, "BEGIN")
        else:
            self.engine = create_async_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_timeout=5,
                pool_pre_ping=True,
                connect_args={"connect_timeout": 5},
            )
            self._reader = self.engine

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        try:
            async with self.engine.begin() as conn:
                yield conn
        except Exception as exc:
            if is_unavailable(exc):
                raise ServiceUnavailable() from exc
            raise

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only snapshot."""
        try:
            async with self._reader.connect() as conn, conn.begin():
                yield conn
        except Exception as exc:
            if is_unavailable(exc):
                raise ServiceUnavailable() from exc
            raise

    async def ping(self) -> None:
        """Raises ``ServiceUnavailable`` when the database does not answer."""
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._reader is not self.engine:
            await self._reader.dispose()
