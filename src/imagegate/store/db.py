"""The database handle: one engine per URL, transactions that behave alike on SQLite and PostgreSQL.

SQLite (the embedded default) runs in WAL mode with a busy timeout and foreign keys on. It has
one writer at a time, so a process writes through one writer task (``GroupCommit``): each
``transaction()`` block runs inside a ``SAVEPOINT`` of the writer's current transaction, and many
blocks share one ``BEGIN IMMEDIATE`` … ``COMMIT``. A block that raises rolls back to its savepoint
(only its own writes); a caller leaves ``transaction()`` only once the transaction holding its
writes has committed. Writers queue in memory instead of busy-waiting on the file lock; other
processes (a CLI command, a second gateway) still meet ``BEGIN IMMEDIATE`` and its busy timeout.
Reads use a separate engine with plain ``BEGIN``, which in WAL mode is a consistent snapshot
that never blocks writers.

PostgreSQL (psycopg 3) uses one pooled engine for both; rows are claimed with
``FOR UPDATE SKIP LOCKED`` (see ``imagegate.queue.claims``).

Connection failures (server down, pool exhausted, SQLite locked past its timeout) surface as
``ServiceUnavailable`` so the API answers 503 with ``Retry-After`` instead of hanging or 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy.exc
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from imagegate.errors import ServiceUnavailable

__all__ = ["Database", "GroupCommit", "is_unavailable"]

SQLITE_BUSY_TIMEOUT_MS = 15_000
GROUP_COMMIT_MAX = 256
"""The most transaction blocks one SQLite commit holds: a bound on how long the first waits."""


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


@dataclass(eq=False)
class _Unit:
    """One ``transaction()`` block waiting for, running on, or done with the writer's connection."""

    granted: asyncio.Future[AsyncConnection]
    finished: asyncio.Future[BaseException | None]
    committed: asyncio.Future[None] = field(init=False)

    def __post_init__(self) -> None:
        self.committed = self.granted.get_loop().create_future()

    def finish(self, error: BaseException | None) -> None:
        if not self.finished.done():
            self.finished.set_result(error)


_writer_task: contextvars.ContextVar[asyncio.Task[Any] | None] = contextvars.ContextVar(
    "imagegate_sqlite_writer_task", default=None
)
"""The task inside a ``transaction()`` block: the writer would wait on it forever if it opened
another one."""


class GroupCommit:
    """SQLite's one writer: runs ``transaction()`` blocks one after another on one connection,
    each in a savepoint, and commits them together.

    The writer takes every block queued while its transaction is open (up to
    ``GROUP_COMMIT_MAX``), then commits, then answers each block's caller. A block that raises
    is rolled back to its savepoint and its caller gets its own error; if the commit itself fails,
    every caller in it gets that failure and nothing of theirs is written. A block that waits
    longer than the busy timeout for its turn gets ``ServiceUnavailable``, as a ``BEGIN
    IMMEDIATE`` would.
    """

    def __init__(self, engine: AsyncEngine, *, max_batch: int = GROUP_COMMIT_MAX) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Unit] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[AsyncConnection]:
        """A savepoint of the writer's transaction; leaving it waits for that transaction's
        commit (and raises if the commit failed)."""
        task = asyncio.current_task()
        if task is not None and _writer_task.get() is task:
            raise RuntimeError("a SQLite write transaction cannot open another one inside it")
        loop = asyncio.get_running_loop()
        unit = _Unit(granted=loop.create_future(), finished=loop.create_future())
        self._start(loop)
        self._queue.put_nowait(unit)
        token = _writer_task.set(task)
        try:
            try:
                async with asyncio.timeout(SQLITE_BUSY_TIMEOUT_MS / 1000):
                    conn = await asyncio.shield(unit.granted)
            except TimeoutError:
                raise ServiceUnavailable() from None
            yield conn
        except BaseException as exc:
            unit.finish(exc)
            if isinstance(exc, Exception) and unit.granted.done():
                # Its writes are undone, but the write lock is held until the batch ends:
                # the caller answers once another process could write.
                await asyncio.wait([unit.committed])
            raise
        finally:
            _writer_task.reset(token)
        unit.finish(None)
        await unit.committed

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._task is not None and not self._task.done() and self._task.get_loop() is loop:
            return
        if self._task is None or self._task.get_loop() is not loop:
            self._queue = asyncio.Queue()  # a queue belongs to the loop it was first used on
        self._task = loop.create_task(self._write(), name="imagegate-sqlite-writer")

    async def close(self) -> None:
        """Stop the writer; blocks still queued get ``ServiceUnavailable``."""
        task, self._task = self._task, None
        if task is None or task.done():
            return
        if task.get_loop() is not asyncio.get_running_loop():
            return  # its loop is gone, and the task with it
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        while not self._queue.empty():
            _fail(self._queue.get_nowait(), ServiceUnavailable())

    async def _write(self) -> None:
        while True:
            first = await self._queue.get()
            try:
                async with self._engine.connect() as conn:
                    await self._batch(conn, first)
            except Exception as exc:
                # Every block of the failed batch has its error; a failed connect, the first.
                _fail(first, ServiceUnavailable() if is_unavailable(exc) else exc)

    async def _batch(self, conn: AsyncConnection, first: _Unit) -> None:
        taken = [first]
        try:
            transaction = await conn.begin()
            await self._run(conn, first)
            while len(taken) < self._max_batch and not self._queue.empty():
                taken.append(self._queue.get_nowait())
                await self._run(conn, taken[-1])
            await transaction.commit()
        except BaseException as exc:
            failure = exc
            if not isinstance(exc, Exception) or is_unavailable(exc):
                failure = ServiceUnavailable()
            for unit in taken:
                _fail(unit, failure)
            raise
        for unit in taken:
            if not unit.committed.done():
                unit.committed.set_result(None)

    async def _run(self, conn: AsyncConnection, unit: _Unit) -> None:
        """One block, in a savepoint: released when the block ends well, else rolled back."""
        if unit.finished.done():  # its caller gave up waiting
            return
        savepoint = await conn.begin_nested()
        unit.granted.set_result(conn)
        if await unit.finished is None:
            await savepoint.commit()
        else:
            await savepoint.rollback()


def _fail(unit: _Unit, error: BaseException) -> None:
    """Hand ``error`` to whichever of the block's waits its caller is in, if any."""
    for future in (unit.granted, unit.committed):
        if not future.done():
            future.set_exception(error)
            future.exception()  # retrieved: a caller that gave up must not leave a warning


class Database:
    """Engines for one database URL, with ``transaction()`` for writes and ``read()`` for reads."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(url, "BEGIN IMMEDIATE")
            self._reader = _sqlite_engine(url, "BEGIN")
            self._writer: GroupCommit | None = GroupCommit(self.engine)
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
            self._writer = None

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        try:
            if self._writer is not None:
                async with self._writer.unit() as conn:
                    yield conn
            else:
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
        if self._writer is not None:
            await self._writer.close()
        await self.engine.dispose()
        if self._reader is not self.engine:
            await self._reader.dispose()
