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

Hot paths (a submit, a job read) pass their whole transaction as one body to ``write()`` or
``read_with()``. The body is an ordinary ``async def`` over the connection, like any store
function; on SQLite it runs in one step on the connection's own thread (``run_inline``: a body
that only awaits the database never suspends there), so a submit costs one trip to the driver's
thread instead of one per statement, and many submits share one trip and one commit (a write
given to an idle writer while the event loop has nothing else to run costs no trip at all: it
runs on the loop's thread); reads likewise share trips (``GroupRead``), each in its own
snapshot. On PostgreSQL the body runs on one of a few threads with a synchronous connection
(``ThreadedBodies``): one hand-off per transaction instead of a round of the event loop per
statement, and one hand-off and one connection for all the reads queued while the previous
batch of reads ran, a read-only one in autocommit (no BEGIN or ROLLBACK round trips). Writes of
many callers that one statement can make (``write_each``: a submit) are batched the same way,
one transaction and one commit for the callers queued while the previous one ran, each answered
after that commit.

PostgreSQL (psycopg 3) uses one pooled engine for both; rows are claimed with
``FOR UPDATE SKIP LOCKED`` (see ``imagegate.queue.claims``).

Connection failures (server down, pool exhausted, SQLite locked past its timeout) surface as
``ServiceUnavailable`` so the API answers 503 with ``Retry-After`` instead of hanging or 500.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import contextvars
import functools
import json
import re
import sqlite3
import threading
import time
import weakref
from _json import encode_basestring_ascii, make_encoder
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import orjson
import sqlalchemy.exc
from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from imagegate.errors import ServiceUnavailable
from imagegate.loop import is_idle
from imagegate.store import prepared

__all__ = [
    "Body",
    "Database",
    "GroupCommit",
    "GroupRead",
    "InlineConnection",
    "ThreadedBodies",
    "is_unavailable",
    "run_inline",
]

T = TypeVar("T")

Body = Callable[[AsyncConnection], Awaitable[T]]
"""A whole transaction as one function: ``write()`` and ``read_with()`` run it."""

K = TypeVar("K")

Many = Callable[[AsyncConnection, list[K]], Awaitable[list[T]]]
"""A read or write of many items in one statement, an answer per item in order: ``read_each()``
and ``write_each()`` run it."""

SQLITE_BUSY_TIMEOUT_MS = 15_000
SQLITE_WAL_AUTOCHECKPOINT = 1000
"""SQLite's own default: a commit that leaves the WAL with this many pages checkpoints it."""
QUIET_WRITES = 3
"""SQLite: a write runs on the event loop's thread only once this many writes in a row before
it found the writer idle and the loop with nothing else to do, as in a process serving one
request at a time. Under load the loop is often idle for a moment between two bursts; a write
run on it then holds up what arrives next while SQLite writes, each statement handing the GIL
to the process's other threads and waiting to take it back (with 2,000 jobs finishing at once,
slow callbacks went from 4-13 to 5-37 a run when any quiet moment would do)."""
WRITER_THREAD_EVERY = 32
"""SQLite: of the writes the idle writer would run on the event loop's thread, every this many
goes to the writer's thread anyway. Those run on the loop never checkpoint the WAL (nor wait
for its ``fsync``); a commit on the writer's thread does, so the WAL stays bounded."""
BODY_THREADS = 4
"""PostgreSQL: threads (and connections) running ``write``/``read_with`` bodies per process."""
PING_IDLE_SECONDS = 1.0
"""PostgreSQL: a body's connection that sat in the pool longer than this is pinged before use
(``_ping_when_idle``)."""
GROUP_COMMIT_MAX = 256
"""The most transaction blocks one SQLite commit holds: a bound on how long the first waits."""
WRITE_EACH_MAX = 64
"""PostgreSQL: the most items one ``write_each`` transaction holds. ``submit_jobs`` runs each
submit in a subtransaction, and past 64 in one transaction PostgreSQL's per-session cache of
them overflows, which slows every other session's snapshots while it stays open."""


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


_JSON_TEXT = make_encoder(
    None,  # no check for reference cycles: the values are decoded JSON and plain records
    json.JSONEncoder().default,
    encode_basestring_ascii,
    None,
    ": ",
    ", ",
    sort_keys=False,
    skipkeys=False,
    allow_nan=True,
)
"""What ``json.dumps`` builds on every call (its C encoder, with its default options)."""


def _json_text(value: Any) -> str:
    """``json.dumps(value)``, the same text, from one encoder made once: ``json.dumps`` makes
    one per call, which cost the SQLite writer's thread 1-3 µs for each of the six JSON values
    of a submitted job (five columns of the job, the event's data)."""
    return "".join(_JSON_TEXT(value, 0))


def _jsonb_bytes(value: Any) -> bytes:
    """A JSON bind for PostgreSQL's ``jsonb`` columns, by orjson: ~10x faster than
    ``_json_text`` (a batch of 16 submits' ``submit_jobs`` argument, 15 → 1.6 µs a submit of the
    body thread's CPU). Its text differs (compact, non-ASCII unescaped), but ``jsonb`` stores
    the parsed value, not the text. What orjson refuses (an integer past 64 bits, a key that is
    not a string) goes through ``_json_text`` as before."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return _json_text(value).encode()


_LONG_NUMBER = re.compile(rb"\d{19}")


def _json_value(data: bytes) -> Any:
    """A ``jsonb`` value psycopg read, decoded by orjson: its default, ``json.loads``, took ~5x
    as long, and a PostgreSQL worker decodes four to six such columns of every job it claims
    and of every job it completes. What orjson reads differently goes to ``json.loads``, the
    same value as before: a number of 19 digits or more (orjson makes an integer outside 64
    bits a float) and what orjson refuses (a lone surrogate, nesting past 1,024 levels)."""
    if _LONG_NUMBER.search(data) is None:
        with contextlib.suppress(orjson.JSONDecodeError):
            return orjson.loads(data)
    return json.loads(data)


def _sqlite_engine(
    url: str, begin: str, *, reset_on_return: bool = True, any_thread: bool = False
) -> AsyncEngine:
    """``any_thread``: its ``sqlite3`` connections may be used from another thread than the one
    that opened them (aiosqlite's), one thread at a time (the writer's, ``GroupCommit``)."""
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connect_args: dict[str, Any] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    if any_thread:
        connect_args["check_same_thread"] = False
    engine = create_async_engine(
        url,
        connect_args=connect_args,
        pool_reset_on_return="rollback" if reset_on_return else None,
        json_serializer=_json_text,
    )

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


class InlineConnection:
    """What store functions use of ``AsyncConnection`` (``execute``, ``scalar``, ``dialect``)
    over a synchronous ``Connection``: its awaits return at once, without suspending.

    On SQLite, statements marked ``prepared()`` run straight on the ``sqlite3`` connection
    (``imagegate.store.prepared``), in the same transaction.
    """

    def __init__(self, sync: Connection) -> None:
        self.sync_connection = sync
        self.dialect = sync.dialect
        raw = sync.connection.dbapi_connection
        self._sqlite = raw if isinstance(raw, sqlite3.Connection) else None

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        if self._sqlite is not None:
            result = prepared.run(self._sqlite, self.dialect, statement, parameters)
            if result is not None:
                return result
        return self.sync_connection.execute(statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        if self._sqlite is not None:
            result = prepared.run(self._sqlite, self.dialect, statement, parameters)
            if result is not None:
                return result.scalar()
        return self.sync_connection.scalar(statement, parameters)


def run_inline(body: Body[T], sync: Connection) -> T:
    """Run ``body`` to its end on ``sync``, in the calling thread.

    Every await of a body that only talks to its connection completes at once, so one
    ``send`` finishes the coroutine; a body that waits on anything else is a bug, refused.
    """
    coroutine = cast(Coroutine[Any, Any, T], body(cast(AsyncConnection, InlineConnection(sync))))
    try:
        coroutine.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coroutine.close()
    raise RuntimeError("a database body awaited something other than its connection")


_sync_connections: weakref.WeakKeyDictionary[Any, Connection] = weakref.WeakKeyDictionary()


async def _on_driver_thread(conn: AsyncConnection, work: Callable[[Connection], T]) -> T:
    """Run ``work`` on the thread of ``conn``'s aiosqlite connection, with a synchronous
    SQLAlchemy ``Connection`` over the same ``sqlite3`` connection, in one trip.

    The synchronous connection is made once per driver connection (on its thread: sqlite3
    connections belong to the thread that opened them). SQLAlchemy never ends a transaction on
    it: it is never closed or returned, and its pool does not reset it, so the transaction the
    caller opened (``BEGIN IMMEDIATE`` of the writer, ``BEGIN`` of a read) stays the caller's.
    Making it is the exception: SQLAlchemy's first connect ends with a ``ROLLBACK``, so it is
    made before any transaction is open on the driver connection (the writer runs ``_itself``
    on a new connection first) and refused inside one, whose writes it would silently undo.
    """
    return await _on_driver(await _driver_of(conn), work)


async def _driver_of(conn: AsyncConnection) -> Any:
    """``conn``'s aiosqlite connection (asking costs a greenlet switch into SQLAlchemy: a
    task that keeps its connection asks once)."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    return driver


async def _on_driver(driver: Any, work: Callable[[Connection], T]) -> T:
    """``_on_driver_thread`` for the aiosqlite connection ``driver`` itself."""

    def run() -> T:
        sync = _sync_connections.get(driver)
        if sync is None:
            raw = driver._conn  # the sqlite3 connection aiosqlite drives on this thread
            if raw.in_transaction:
                raise RuntimeError("a driver connection was first used inside a transaction")
            engine = create_engine(
                "sqlite://",
                creator=lambda: raw,
                poolclass=StaticPool,
                pool_reset_on_return=None,
                json_serializer=_json_text,
            )
            sync = _sync_connections[driver] = engine.connect()
        return work(sync)

    # aiosqlite's own way to run a function on its thread; it has no public name for it.
    return cast(T, await driver._execute(run))


def _itself(sync: Connection) -> Connection:
    return sync


@dataclass(eq=False)
class _Inline(Generic[T]):
    """A ``write()`` body waiting for the writer; ``done`` is answered after the commit."""

    body: Body[T]
    done: asyncio.Future[T]
    value: Any = None
    error: BaseException | None = None
    many: Many[Any, T] | None = None
    """For ``read_each``: the read of many items this unit's ``item`` joins in a batch."""
    item: Any = None


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


_writer_task: contextvars.ContextVar[weakref.ref[asyncio.Task[Any]] | None] = (
    contextvars.ContextVar("imagegate_sqlite_writer_task", default=None)
)
"""The task inside a ``transaction()`` block: the writer would wait on it forever if it opened
another one. Held weakly: every timer started in the block (the wait for the writer's grant
among them) keeps a copy of the task's context until the time it was set for, cancelled or
not, and would keep the finished task alive with it (its job, its coroutine) for as long."""


class _OneTask(abc.ABC):
    """A queue of units served by one task, on the loop that queued first (a new loop, such as
    a test's, gets a new task and queue); the task takes up to ``max_batch`` units at a time."""

    name = ""

    def __init__(self, engine: AsyncEngine, *, max_batch: int = GROUP_COMMIT_MAX) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Unit | _Inline[Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._waiting: collections.deque[tuple[float, _Inline[Any]]] = collections.deque()
        """Bodies queued by ``run`` with the loop time they are given up at, oldest first."""
        self._watchdog: asyncio.TimerHandle | None = None

    async def run(self, body: Body[T]) -> T:
        """Queue ``body``; its result once the task has run it (and, for writes, committed).

        A body still waiting after the busy timeout gets ``ServiceUnavailable``, as a ``BEGIN
        IMMEDIATE`` would; the task skips it if it has not run it yet. So it does a body whose
        caller is cancelled first: nothing of it is written, where a shielded wait used to run
        and commit it for nobody (and cost the loop a second future and callback per body).
        """
        loop = asyncio.get_running_loop()
        unit: _Inline[T] = _Inline(body, loop.create_future())
        self._start(loop)
        self._queue.put_nowait(unit)
        self._watch(loop, unit)
        return await unit.done

    def _watch(self, loop: asyncio.AbstractEventLoop, unit: _Inline[Any]) -> None:
        """Give ``unit`` up after the busy timeout. Every body waits as long, so they expire in
        the order they were queued: one timer, for the oldest, serves them all (a timeout per
        body cost the loop a timer handle and a heap push and cancel per write)."""
        waiting = self._waiting
        while waiting and waiting[0][1].done.done():
            waiting.popleft()
        waiting.append((loop.time() + SQLITE_BUSY_TIMEOUT_MS / 1000, unit))
        if self._watchdog is None:
            self._watchdog = loop.call_at(waiting[0][0], self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._watchdog = None
        waiting, now = self._waiting, loop.time()
        while waiting and (waiting[0][1].done.done() or waiting[0][0] <= now):
            _, unit = waiting.popleft()
            if not unit.done.done():
                unit.done.set_exception(ServiceUnavailable())
        if waiting:
            self._watchdog = loop.call_at(waiting[0][0], self._expire, loop)

    async def _take(self) -> list[_Unit | _Inline[Any]]:
        """The next unit (waiting for one), with every unit queued behind it, up to the batch."""
        taken = [await self._queue.get()]
        while len(taken) < self._max_batch and not self._queue.empty():
            taken.append(self._queue.get_nowait())
        return taken

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._task is not None and not self._task.done() and self._task.get_loop() is loop:
            return
        if self._task is None or self._task.get_loop() is not loop:
            self._queue = asyncio.Queue()  # a queue belongs to the loop it was first used on
            self._waiting.clear()  # so do the timer and the bodies it watched
            self._watchdog = None
        self._task = loop.create_task(self._serve(), name=self.name)

    async def close(self) -> None:
        """Stop the task; units still queued get ``ServiceUnavailable``."""
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

    @abc.abstractmethod
    async def _serve(self) -> None:
        """Take units from the queue and run them, forever."""


class GroupRead(_OneTask):
    """SQLite reads given as bodies (``Database.read_with``), many to a trip.

    One task takes every body queued while its last trip ran and runs them one after another
    on a reader connection's thread, each in its own snapshot (``BEGIN`` … ``ROLLBACK``). Under
    load a read costs a share of one trip, not a pool checkout and a trip of its own. The task
    keeps its connection between trips (it holds no snapshot between them) and takes a new one
    after a failure.
    """

    name = "imagegate-sqlite-reader"

    async def _serve(self) -> None:
        conn: AsyncConnection | None = None  # kept between batches; a new one after a failure
        driver: Any = None
        try:
            while True:
                batch = cast(list[_Inline[Any]], await self._take())  # only bodies queue here
                try:
                    if conn is None:
                        conn = await self._engine.connect()
                        driver = await _driver_of(conn)
                    await _on_driver(driver, functools.partial(_read_bodies, batch))
                except Exception as exc:
                    failure = ServiceUnavailable() if is_unavailable(exc) else exc
                    for unit in batch:
                        _fail(unit, failure)
                    await _discard(conn)
                    conn = None
                    continue
                for unit in batch:
                    _answer(unit)
        finally:
            await _discard(conn)


class GroupCommit(_OneTask):
    """SQLite's one writer: runs ``transaction()`` blocks one after another on one connection,
    each in a savepoint, and commits them together.

    The writer takes every block queued while its transaction is open (up to
    ``GROUP_COMMIT_MAX``), then commits, then answers each block's caller. A block that raises
    is rolled back to its savepoint and its caller gets its own error; if the commit itself fails,
    every caller in it gets that failure and nothing of theirs is written. A block that waits
    longer than the busy timeout for its turn gets ``ServiceUnavailable``, as a ``BEGIN
    IMMEDIATE`` would.

    ``run(body)`` queues a whole transaction instead of a block: the writer runs every such body
    queued in a row in one trip to its connection's thread (``run_inline``), each rolled back
    alone if it raises, so a burst of submits costs one trip and one commit. A batch of bodies
    alone is a single trip, ``BEGIN IMMEDIATE`` and ``COMMIT`` included, and takes no savepoints
    unless a body raises (``_commit_all``). The writer keeps its connection between batches and
    takes a new one after a failure.

    A body of a few rows (``Database.write``'s: a submit, a completion, a lease, not a claim of
    many jobs) given to an idle writer (nothing queued, no batch running) while nothing else
    waits on the event loop, as for the ``QUIET_WRITES`` writes before it, runs at once on the
    loop's own thread, on the writer's connection (``_commit_here``): a write at one connection
    then costs no hand-off to the writer's thread and no wake-up of the loop again (two thread
    wake-ups and two steps of the writer's task). It never waits there: a database locked by
    another process, or a failing connection, sends the body to the writer's thread, which
    waits or fails as it does; and it never checkpoints the WAL, which commits on the writer's
    thread do (``WRITER_THREAD_EVERY``). Under load, bodies go to the writer's thread, whose
    SQLite work runs beside the loop, in batches.
    """

    name = "imagegate-sqlite-writer"

    def __init__(self, engine: AsyncEngine, *, max_batch: int = GROUP_COMMIT_MAX) -> None:
        super().__init__(engine, max_batch=max_batch)
        self.commits = 0
        """Transactions committed so far (each holds one or more blocks and bodies)."""
        self._sync: Connection | None = None
        """The writer's connection, while the writer's task holds it."""
        self._idle = False
        """The writer's task waits for units: its connection's thread runs nothing of it."""
        self._quiet = 0
        """Writes in a row that found the writer idle and the loop with nothing else to do."""
        self._here_left = WRITER_THREAD_EVERY

    async def run(self, body: Body[T], *, here: bool = False) -> T:
        """``_OneTask.run``; ``here``: ``body`` is a transaction of a few rows, which may run on
        the loop's thread (see the class's docstring)."""
        sync = self._sync
        if here and sync is not None and self._may_run_here():
            unit: _Inline[T] = _Inline(body, asyncio.get_running_loop().create_future())
            if _commit_here(unit, sync):
                self.commits += 1
                if unit.error is not None:
                    raise unit.error
                return cast(T, unit.value)
        return await super().run(body)

    def _may_run_here(self) -> bool:
        """Whether a body may run now on the loop's thread (see the class's docstring)."""
        if not self._quiet_now():
            self._quiet = 0
            return False
        self._quiet += 1
        if self._quiet <= QUIET_WRITES:
            return False
        self._here_left -= 1
        if self._here_left <= 0:
            self._here_left = WRITER_THREAD_EVERY
            return False
        return True

    def _quiet_now(self) -> bool:
        """The writer is idle and the loop has nothing else to run."""
        if not self._idle or not self._queue.empty():
            return False
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.get_loop() is not loop:
            return False
        # A callback ready to run or a socket ready to read would wait for this write.
        return is_idle(loop)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._sync, self._idle = None, False  # the new task connects anew
        super()._start(loop)

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[AsyncConnection]:
        """A savepoint of the writer's transaction; leaving it waits for that transaction's
        commit (and raises if the commit failed)."""
        task = asyncio.current_task()
        inside = _writer_task.get()
        if task is not None and inside is not None and inside() is task:
            raise RuntimeError("a SQLite write transaction cannot open another one inside it")
        loop = asyncio.get_running_loop()
        unit = _Unit(granted=loop.create_future(), finished=loop.create_future())
        self._start(loop)
        self._queue.put_nowait(unit)
        token = _writer_task.set(None if task is None else weakref.ref(task))
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

    async def _serve(self) -> None:
        conn: AsyncConnection | None = None  # kept between batches; a new one after a failure
        driver: Any = None
        try:
            while True:
                self._idle = True
                taken = await self._take()
                self._idle = False
                try:
                    if conn is None:
                        conn = await self._engine.connect()
                        driver = await _driver_of(conn)
                        # Before the first block can open a transaction on it.
                        self._sync = await _on_driver(driver, _itself)
                    if all(isinstance(unit, _Inline) for unit in taken):
                        await self._commit_bodies(driver, cast(list[_Inline[Any]], taken))
                    else:
                        await self._batch(conn, taken)
                except Exception as exc:
                    # Every unit of the failed batch has its error (a failed connect included).
                    failure = ServiceUnavailable() if is_unavailable(exc) else exc
                    for unit in taken:
                        _fail(unit, failure)
                    self._sync = None
                    await _discard(conn)
                    conn = None
        finally:
            self._sync, self._idle = None, False
            await _discard(conn)

    async def _commit_bodies(self, driver: Any, bodies: list[_Inline[Any]]) -> None:
        """Bodies alone: ``BEGIN IMMEDIATE``, each body in its savepoint, ``COMMIT``, all in one
        trip to the writer's thread (``driver``'s); each caller answered after the commit."""
        await _on_driver(driver, functools.partial(_commit_all, bodies))
        self.commits += 1
        for unit in bodies:
            _answer(unit)

    async def _batch(self, conn: AsyncConnection, taken: list[_Unit | _Inline[Any]]) -> None:
        """Blocks (and the bodies queued with them) in one transaction; ``taken`` grows with
        the units queued while it runs."""
        try:
            transaction = await conn.begin()
            ready = list(taken)
            while ready:
                await self._run_all(conn, ready)
                ready = []
                while len(taken) < self._max_batch and not self._queue.empty():
                    ready.append(self._queue.get_nowait())
                    taken.append(ready[-1])
            await transaction.commit()
            self.commits += 1
        except BaseException as exc:
            failure = exc
            if not isinstance(exc, Exception) or is_unavailable(exc):
                failure = ServiceUnavailable()
            for unit in taken:
                _fail(unit, failure)
            raise
        for unit in taken:
            if isinstance(unit, _Inline):
                _answer(unit)
            elif not unit.committed.done():
                unit.committed.set_result(None)

    async def _run_all(self, conn: AsyncConnection, units: list[_Unit | _Inline[Any]]) -> None:
        """Run ``units`` in order: each block on its own, each run of bodies in one trip."""
        bodies: list[_Inline[Any]] = []
        for unit in units:
            if isinstance(unit, _Inline):
                bodies.append(unit)
                continue
            if bodies:
                await _on_driver_thread(conn, functools.partial(_run_bodies, bodies))
                bodies = []
            await self._run(conn, unit)
        if bodies:
            await _on_driver_thread(conn, functools.partial(_run_bodies, bodies))

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


async def _discard(conn: AsyncConnection | None) -> None:
    """Give the writer's connection back (after a failure it may be broken)."""
    if conn is not None:
        with contextlib.suppress(Exception):
            await conn.close()


def _commit_all(bodies: list[_Inline[Any]], sync: Connection) -> None:
    """On the writer's thread: one transaction holding every body.

    The bodies run one after another with no savepoint between them: a savepoint and its
    release are two statements more per body, each a wait for the GIL the event loop holds, and
    a body seldom raises (a submit refused by a cap or for its credits). When one does, the
    transaction is rolled back and the batch runs again, each body in its own savepoint, so the
    one that raised fails alone: the bodies before it run twice, the first run undone."""
    raw = _sqlite_of(sync)
    if not _transaction(raw, functools.partial(_run_together, bodies, sync)):
        _transaction(raw, functools.partial(_run_bodies, bodies, sync))


def _commit_here(unit: _Inline[Any], sync: Connection) -> bool:
    """On the event loop's thread, while the writer is idle: ``unit`` committed as
    ``_commit_all`` commits it, but without waiting for another process's write lock (a busy
    timeout of 0) and without checkpointing the WAL (its ``fsync``). False when it could not be
    committed (locked, or the connection failed; nothing of it is written): the writer's thread
    runs it again."""
    raw = _sqlite_of(sync)
    _control(raw, "PRAGMA busy_timeout=0")
    _control(raw, "PRAGMA wal_autocheckpoint=0")
    try:
        _commit_all([unit], sync)  # a body's own error is kept in ``unit``, never raised
    except sqlalchemy.exc.DBAPIError:
        return False
    finally:
        _control(raw, f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT}")
        _control(raw, f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    return True


def _transaction(raw: sqlite3.Connection, run: Callable[[], bool | None]) -> bool:
    """``run`` inside ``BEGIN IMMEDIATE``: committed unless it returns False (then rolled
    back), rolled back if anything raises; whether it was committed."""
    _control(raw, "BEGIN IMMEDIATE")
    try:
        keep = run() is not False
        if keep:
            _control(raw, "COMMIT")
        elif raw.in_transaction:  # an error may have ended it already
            _control(raw, "ROLLBACK")
    except BaseException:
        if raw.in_transaction:
            _control(raw, "ROLLBACK")
        raise
    return keep


def _run_together(bodies: list[_Inline[Any]], sync: Connection) -> bool:
    """On the writer's thread: each body in the open transaction, none in a savepoint; False as
    soon as one raises (what it and the bodies before it wrote is then still in the transaction)."""
    for unit in bodies:
        if unit.done.done():  # its caller gave up waiting, or was given up on
            continue
        try:
            unit.value = run_inline(unit.body, sync)
        except Exception:
            return False
    return True


def _sqlite_of(sync: Connection) -> sqlite3.Connection:
    return cast(sqlite3.Connection, sync.connection.dbapi_connection)


def _control(raw: sqlite3.Connection, sql: str) -> None:
    """A transaction statement (``BEGIN``, ``SAVEPOINT``, ``COMMIT``…) straight on ``sqlite3``,
    failing as through SQLAlchemy (``OperationalError`` for a locked database, and so on):
    SQLAlchemy's ``exec_driver_sql`` cost several times what SQLite spends on one."""
    try:
        raw.execute(sql)
    except sqlite3.Error as exc:
        raise sqlalchemy.exc.DBAPIError.instance(sql, (), exc, sqlite3.Error) from exc


def _run_bodies(bodies: list[_Inline[Any]], sync: Connection) -> None:
    """On the writer's thread: each body in a savepoint, rolled back if it raises."""
    raw = _sqlite_of(sync)
    for unit in bodies:
        if unit.done.done():  # its caller gave up waiting, or was given up on
            continue
        _control(raw, "SAVEPOINT imagegate_body")
        try:
            unit.value = run_inline(unit.body, sync)
        except Exception as exc:
            unit.error = exc
            _control(raw, "ROLLBACK TO imagegate_body")
        _control(raw, "RELEASE imagegate_body")


def _read_bodies(bodies: list[_Inline[Any]], sync: Connection) -> None:
    """On a reader's thread: each body inside ``BEGIN`` … ``ROLLBACK`` (a snapshot in WAL mode;
    nothing a read does is kept)."""
    raw = _sqlite_of(sync)
    for unit in bodies:
        if unit.done.done():  # its caller gave up waiting, or was given up on
            continue
        _control(raw, "BEGIN")
        try:
            unit.value = run_inline(unit.body, sync)
        except Exception as exc:
            unit.error = exc
        finally:
            _control(raw, "ROLLBACK")


def _answer(unit: _Inline[Any]) -> None:
    """After the commit: the body's result, or its own error."""
    if unit.done.done():
        return
    if unit.error is not None:
        unit.done.set_exception(unit.error)
    else:
        unit.done.set_result(unit.value)


def _answer_all(units: list[_Inline[Any]], failure: BaseException | None) -> None:
    """Answer each of ``units`` once their batch ended: with ``failure``, if it failed."""
    for unit in units:
        if failure is not None:
            _fail(unit, failure)
        else:
            _answer(unit)


def _settle(units: list[_Inline[Any]], batch: asyncio.Future[None]) -> None:
    """Answer each of ``units`` once their ``batch`` ended: with its failure, if it failed."""
    _answer_all(units, batch.exception())


def _fail(unit: _Unit | _Inline[Any], error: BaseException) -> None:
    """Hand ``error`` to whichever of the block's waits its caller is in, if any."""
    futures = (unit.done,) if isinstance(unit, _Inline) else (unit.granted, unit.committed)
    for future in futures:
        if not future.done():
            future.set_exception(error)
            future.exception()  # retrieved: a caller that gave up must not leave a warning


def _read_all(engine: Engine, units: list[_Inline[Any]]) -> None:
    """On a body thread: each read body on the one read connection, one after another; the
    units of one ``Many`` read (``read_each``) as one body, one statement for all their items.

    The connection is in autocommit and read-only (``_read_engine``): no BEGIN or ROLLBACK round
    trips around the batch, and a statement that would write is refused by PostgreSQL, so nothing
    a read does is kept. Each statement sees what was committed when it started, as under READ
    COMMITTED in a transaction; a body that raises fails alone (with all its items), and the next
    body runs.

    The connection is not pinged first (a round trip per batch): a body that finds it dead (the
    server restarted, the connection was killed) runs again, with the rest, on a new one. Reads
    keep nothing, so running one twice changes nothing."""
    pending = _steps(units)
    for last_try in (False, True):
        with engine.connect() as conn:
            while pending:
                body, owners = pending[0]
                live = [unit for unit in owners if not unit.done.cancelled()]
                if not live:  # its callers gave up waiting
                    pending.pop(0)
                    continue
                try:
                    if len(owners) == 1 and owners[0].many is None:
                        owners[0].value = run_inline(body, conn)
                    else:
                        values = run_inline(_each_of(owners[0].many, live), conn)
                        for unit, value in zip(live, values, strict=True):
                            unit.value = value
                except sqlalchemy.exc.DBAPIError as exc:
                    if exc.connection_invalidated and not last_try:
                        break  # a new connection for this one and the rest
                    for unit in live:
                        unit.error = exc
                except Exception as exc:
                    for unit in live:
                        unit.error = exc
                pending.pop(0)
        if not pending:
            return


def _steps(units: list[_Inline[Any]]) -> list[tuple[Body[Any], list[_Inline[Any]]]]:
    """``units`` in order, those of one ``Many`` read gathered in the place of the first."""
    steps: list[tuple[Body[Any], list[_Inline[Any]]]] = []
    groups: dict[Any, list[_Inline[Any]]] = {}
    for unit in units:
        if unit.many is None:
            steps.append((unit.body, [unit]))
        elif (group := groups.get(unit.many)) is not None:
            group.append(unit)
        else:
            group = groups[unit.many] = [unit]
            steps.append((unit.body, group))
    return steps


def _each_of(many: Many[Any, Any] | None, units: list[_Inline[Any]]) -> Body[list[Any]]:
    assert many is not None
    items = [unit.item for unit in units]
    return lambda conn: many(conn, items)


def _alone(many: Many[K, T], item: K) -> Body[T]:
    async def body(conn: AsyncConnection) -> T:
        (value,) = await many(conn, [item])
        return value

    return body


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Ping a connection as it leaves ``engine``'s pool only if it sat there ``idle_seconds``
    or longer; a failed ping invalidates the whole pool, and the checkout reconnects.

    The pool's own pre-ping pings every checkout: a round trip (and a wake-up of the body
    thread, which then waits for the GIL) before every body, the largest part of the body
    threads' time once most bodies were one statement. A connection used within the last
    second is left unpinged: if the server went away meanwhile (a restart), the body's own
    statement fails as a disconnect, its caller gets ``ServiceUnavailable`` (the API answers
    503, a worker's lease expires and the job is retried), and SQLAlchemy invalidates every
    connection of the pool made before that error, so the next checkouts reconnect rather than
    each failing in turn. (SQLAlchemy's documented custom pessimistic handling: a ``checkout``
    event raising ``DisconnectionError``.)
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["imagegate_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("imagegate_idle_since", None)
        if since is None or time.monotonic() - since < idle_seconds:
            return  # a new connection, or one in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise sqlalchemy.exc.InvalidatePoolError() from exc


def _read_engine(url: str) -> Engine:
    """The engine of ``ThreadedBodies`` reads: one connection (a batch of reads runs at a time),
    in autocommit, its session read-only from the start (set in the startup packet: no trip)."""
    return create_engine(
        url,
        pool_size=1,
        max_overflow=0,
        pool_timeout=5,
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 5, "options": "-c default_transaction_read_only=on"},
        json_deserializer=_json_value,
    )


class ThreadedBodies:
    """PostgreSQL bodies on a few threads, each with a synchronous psycopg connection.

    Through the async driver every statement costs the event loop a round of waiting (greenlet
    switch, reader registration, wake-up); a synchronous connection in a thread costs it one
    hand-off per transaction, and the thread waits on the network without the GIL. The pool is
    small: admission takes the account's row lock, so one account's submits are serial anyway;
    they go in batches instead (``write_each``), one transaction at a time.
    """

    def __init__(
        self,
        url: str,
        *,
        threads: int = BODY_THREADS,
        ping_idle_seconds: float = PING_IDLE_SECONDS,
    ) -> None:
        self._engine = create_engine(
            url,
            pool_size=threads,
            max_overflow=0,
            pool_timeout=5,
            connect_args={"connect_timeout": 5},
            json_serializer=_jsonb_bytes,
            json_deserializer=_json_value,
        )
        _ping_when_idle(self._engine, ping_idle_seconds)
        self._reader = _read_engine(url)
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="imagegate-db")
        self._reads: list[_Inline[Any]] | None = None
        """While a batch of reads runs: the reads that will make the next one."""
        self._writes: dict[Many[Any, Any], list[_Inline[Any]]] = {}
        """For each ``write_each`` whose batch runs: the items that will make its next one. The
        event loop adds to them and the body thread takes them (``_write_batches``), both under
        ``_writing``."""
        self._writing = threading.Lock()

    async def write(self, body: Body[T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._threads, functools.partial(self._run, body)
        )

    async def write_alone(self, body: Body[T]) -> T:
        """``body``, one statement, run in autocommit: the statement is its own transaction."""
        return await asyncio.get_running_loop().run_in_executor(
            self._threads, functools.partial(self._run_alone, body)
        )

    async def read(self, body: Body[T]) -> T:
        """Reads queued while a batch of reads runs go together in the next batch: one hand-off
        to a thread and one connection (``_read_batch``) for all of them."""
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue_read(_Inline(body, done))
        return await done

    async def read_each(self, many: Many[K, T], item: K) -> T:
        """``many``'s answer for ``item``: the items of one ``many`` queued while a batch of
        reads runs are read together, in one statement, in the next batch."""
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue_read(_Inline(_alone(many, item), done, many=many, item=item))
        return await done

    async def write_each(
        self, many: Many[K, T], item: K, *, alone: bool = False, after_turn: bool = False
    ) -> T:
        """``many``'s answer for ``item``, once the transaction that wrote it has committed.

        While a batch of one ``many`` runs, its items queue for the next: one hand-off to a
        thread, one transaction with one ``many`` statement and one commit for up to
        ``WRITE_EACH_MAX`` callers. ``many`` answers each item on its own (a refusal is an
        answer, not an error); if it raises, or the commit fails, every item of the batch gets
        that error and nothing of theirs is written. ``alone``: ``many`` is one statement, run
        in autocommit as ``write_alone`` runs a body. ``after_turn``: with no batch running,
        the first item's batch starts once the event loop has run the callbacks ready now
        (``_start_after_turn``) instead of at once, with every item they added."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        unit: _Inline[T] = _Inline(_alone(many, item), done, many=many, item=item)
        with self._writing:
            following = self._writes.get(many)
            if following is not None:  # a batch is running (or starting): join the next one
                following.append(unit)
            else:
                self._writes[many] = [unit] if after_turn else []
        if following is None:
            if after_turn:
                loop.call_soon(self._start_after_turn, loop, many, alone)
            else:
                self._start_batch(loop, many, [unit], alone)
        return await done

    def _start_after_turn(
        self, loop: asyncio.AbstractEventLoop, many: Many[Any, Any], alone: bool
    ) -> None:
        """The first batch of ``many``'s items queued during the event loop's last turn.

        Completions arrive a few to a turn of the loop (vendors' answers read together): started
        at once, the first of them made a batch of one and the others waited for its commit,
        and PostgreSQL's CPU per completion grows as its batches shrink (``bench/notes.md``,
        e2e)."""
        with self._writing:
            queued = self._writes[many]
            self._writes[many] = queued[WRITE_EACH_MAX:]
        self._start_batch(loop, many, queued[:WRITE_EACH_MAX], alone)

    def _start_batch(
        self,
        loop: asyncio.AbstractEventLoop,
        many: Many[Any, Any],
        units: list[_Inline[Any]],
        alone: bool,
    ) -> None:
        work = functools.partial(self._write_batches, loop, many, units, alone)
        if self._on_threads(work, units) is None:  # the threads are shut down
            with self._writing:
                left = self._writes.pop(many)
            for unit in left:
                _fail(unit, RuntimeError("the database is closing"))

    def _write_batches(
        self,
        loop: asyncio.AbstractEventLoop,
        many: Many[Any, Any],
        units: list[_Inline[Any]],
        alone: bool,
    ) -> None:
        """On a body thread: ``units``' batch, then each next batch of ``many`` while items
        queue for one. The thread takes the next batch itself as soon as its batch has
        committed, where a hand-back to the event loop and a new hand-off to a thread cost the
        batches' chain up to a millisecond each under load (the loop's turn, then the thread's
        wake-up and its wait for the GIL); the loop answers the batch's callers meanwhile."""
        while True:
            failure: BaseException | None = None
            try:
                self._write_all(many, units, alone)
            except BaseException as exc:  # every caller of the batch gets it, as from the batch
                failure = exc
            # The next batch is taken (or none) before the callers are answered: a write their
            # answers lead to finds no batch running, as when the loop took the next one.
            with self._writing:
                following = self._writes.pop(many)
                if following:
                    self._writes[many] = following[WRITE_EACH_MAX:]
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_answer_all, units, failure)
            if not following:
                return
            units = following[:WRITE_EACH_MAX]

    def _write_all(self, many: Many[Any, Any], units: list[_Inline[Any]], alone: bool) -> None:
        """On a body thread: the items of ``units`` whose callers still wait, in one transaction."""
        live = [unit for unit in units if not unit.done.cancelled()]
        if live:
            run = self._run_alone if alone else self._run
            values = run(_each_of(many, live))
            for unit, value in zip(live, values, strict=True):
                unit.value = value

    def _queue_read(self, unit: _Inline[Any]) -> None:
        if self._reads is not None:  # a batch is running: join the next one
            self._reads.append(unit)
        else:
            self._reads = []
            self._read_batch([unit])

    def _read_batch(self, units: list[_Inline[Any]]) -> None:
        running = self._on_threads(functools.partial(_read_all, self._reader, units), units)
        if running is None:
            self._reads = None
            return

        def ended(future: asyncio.Future[None]) -> None:
            _settle(units, future)
            following, self._reads = self._reads, None
            if following:
                self._reads = []
                self._read_batch(following)

        running.add_done_callback(ended)

    def _on_threads(
        self, work: Callable[[], None], units: list[_Inline[Any]]
    ) -> asyncio.Future[None] | None:
        """``work`` (a batch of ``units``) started on a body thread; None when the threads are
        shut down (the database is closing), every unit then failed."""
        try:
            return asyncio.get_running_loop().run_in_executor(self._threads, work)
        except RuntimeError as exc:
            for unit in units:
                _fail(unit, exc)
            return None

    def _run(self, body: Body[T]) -> T:
        with self._engine.connect() as conn, conn.begin():
            return run_inline(body, conn)

    def _run_alone(self, body: Body[T]) -> T:
        # Setting autocommit, and the pool's reset of it, only change psycopg's state: no trip.
        with self._engine.connect() as conn:
            return run_inline(body, conn.execution_options(isolation_level="AUTOCOMMIT"))

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._close)

    def _close(self) -> None:
        self._threads.shutdown(wait=True)
        self._engine.dispose()
        self._reader.dispose()


class Database:
    """Engines for one database URL, with ``transaction()`` for writes and ``read()`` for reads."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(url, "BEGIN IMMEDIATE", any_thread=True)
            # Every read ends its own transaction, so returning a reader to the pool needs no
            # ROLLBACK (a trip to its thread per read).
            self._reader = _sqlite_engine(url, "BEGIN", reset_on_return=False)
            self._writer: GroupCommit | None = GroupCommit(self.engine)
            self._reads: GroupRead | None = GroupRead(self._reader)
        else:
            self.engine = create_async_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_timeout=5,
                pool_pre_ping=True,
                connect_args={"connect_timeout": 5},
                json_deserializer=_json_value,
            )
            self._reader = self.engine
            self._writer = None
            self._reads = None
        self._threaded: ThreadedBodies | None = None

    def _bodies(self) -> ThreadedBodies:
        if self._threaded is None:  # made on first use: processes that never use it connect less
            self._threaded = ThreadedBodies(self.url)
        return self._threaded

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

    async def write(self, body: Body[T]) -> T:
        """Run ``body`` as one write transaction, like a ``transaction()`` block around it.

        The body must await nothing but its connection: on SQLite it runs on the writer's
        thread in one trip, or on the event loop's while the writer is idle (see
        ``GroupCommit``), on PostgreSQL on a thread of its own with
        a synchronous connection (``ThreadedBodies``). On SQLite it may run twice, its first run
        undone (another body of its batch raised): what it does besides its connection belongs
        after it.
        """
        try:
            if self._writer is not None:
                return await self._writer.run(body, here=True)
            return await self._bodies().write(body)
        except Exception as exc:
            if is_unavailable(exc):
                raise ServiceUnavailable() from exc
            raise

    async def write_alone(self, body: Body[T]) -> T:
        """``write`` for a body that runs exactly one statement: on PostgreSQL the statement is
        its own transaction (autocommit), one round trip instead of BEGIN, the statement and
        COMMIT, and its row locks are held only while it runs. A statement is all or nothing by
        itself; a body of two would not be, so it must not run here. On SQLite, as ``write``."""
        try:
            if self._writer is not None:
                return await self._writer.run(body)
            return await self._bodies().write_alone(body)
        except Exception as exc:
            if is_unavailable(exc):
                raise ServiceUnavailable() from exc
            raise

    async def write_each(
        self, many: Many[K, T], item: K, *, alone: bool = False, after_turn: bool = False
    ) -> T:
        """``many``'s answer for ``item``, written as ``write`` writes; on PostgreSQL the items
        of one ``many`` queued while its last batch ran are written in one transaction, with one
        statement and one commit (``ThreadedBodies.write_each``). ``many`` must answer each item
        without raising for any one of them: a refusal is an answer. ``alone``: ``many`` runs
        exactly one statement, which on PostgreSQL commits by itself (as ``write_alone``).
        ``after_turn``: on PostgreSQL the items queued in one turn of the event loop share the
        first batch too (``ThreadedBodies.write_each``)."""
        try:
            if self._writer is not None:
                return await self._writer.run(_alone(many, item))
            return await self._bodies().write_each(many, item, alone=alone, after_turn=after_turn)
        except Exception as exc:
            if is_unavailable(exc):
                raise ServiceUnavailable() from exc
            raise

    async def read_with(self, body: Body[T]) -> T:
        """Run ``body`` in a read-only snapshot, like a ``read()`` block around it, on a thread
        as ``write`` does (on SQLite many reads to a trip)."""
        try:
            if self._reads is not None:
                return await self._reads.run(body)
            return await self._bodies().read(body)
        except Exception as exc:
            if is_unavailable(exc):
                raise ServiceUnavailable() from exc
            raise

    async def read_each(self, many: Many[K, T], item: K) -> T:
        """``many``'s answer for ``item``, read as ``read_with`` reads; on PostgreSQL the items
        of one ``many`` queued together are read in one statement (``ThreadedBodies``)."""
        try:
            if self._reads is not None:
                return await self._reads.run(_alone(many, item))
            return await self._bodies().read_each(many, item)
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
        if self._reads is not None:
            await self._reads.close()
        if self._threaded is not None:
            await self._threaded.close()
            self._threaded = None
        await self.engine.dispose()
        if self._reader is not self.engine:
            await self._reader.dispose()
