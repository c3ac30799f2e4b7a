"""A SQLite write given to an idle writer in a quiet process runs on the event loop's own thread:
no hand-off to the writer's thread and back. It never makes the loop wait for another process's
write lock, and it leaves the WAL's checkpoints to the writer's thread, which keeps the WAL
bounded."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.store import accounts
from imagegate.store.db import QUIET_WRITES, SQLITE_WAL_AUTOCHECKPOINT, Database


class Refused(Exception):
    pass


def add(name: str, threads: list[int], *, fail: bool = False, padding: int = 0) -> Any:
    """A body inserting the account ``name`` (its name ``padding`` bytes longer), noting the
    thread it ran on."""

    async def body(conn: AsyncConnection) -> str:
        threads.append(threading.get_ident())
        await accounts.insert_account(
            conn,
            account_id=name,
            name=name + "x" * padding,
            email=None,
            webhook_secret="s",
            now=0,
        )
        if fail:
            raise Refused(name)
        return name

    return body


def file_of(sqlite_url: str) -> Path:
    return Path(sqlite_url.removeprefix("sqlite+aiosqlite:///"))


def names_in(path: Path) -> set[str]:
    """The accounts another process sees."""
    with sqlite3.connect(path) as other:
        return {row[0] for row in other.execute("SELECT id FROM accounts")}


async def test_writes_to_an_idle_writer_run_on_the_loops_thread_committed_when_answered(
    sqlite_db: Database, sqlite_url: str
) -> None:
    threads: list[int] = []
    first = [f"first-{n}" for n in range(QUIET_WRITES + 1)]
    for name in first:  # the writer connects; the process is seen to be quiet
        await sqlite_db.write(add(name, threads))
    threads.clear()
    names = [f"account-{n}" for n in range(10)]

    for name in names:
        assert await sqlite_db.write(add(name, threads)) == name
        assert name in names_in(file_of(sqlite_url)), "answered before it was committed"
    with pytest.raises(Refused):
        await sqlite_db.write(add("refused", threads, fail=True))
    assert await sqlite_db.write(add("after", threads)) == "after"

    here = threads.count(threading.get_ident())
    assert here >= len(threads) - 2, f"{here} of {len(threads)} bodies ran on the loop's thread"
    assert names_in(file_of(sqlite_url)) == {*first, "after", *names}


async def test_a_write_meeting_another_processs_lock_waits_on_the_writers_thread(
    sqlite_db: Database, sqlite_url: str
) -> None:
    threads: list[int] = []
    await sqlite_db.write(add("first", threads))
    loop = asyncio.get_running_loop()
    with sqlite3.connect(file_of(sqlite_url), isolation_level=None) as other:
        other.execute("BEGIN IMMEDIATE")  # another process writing
        threads.clear()
        writing = asyncio.ensure_future(sqlite_db.write(add("second", threads)))
        started = loop.time()
        await asyncio.sleep(0.3)
        assert loop.time() - started < 2, "the event loop waited for the other process's lock"
        assert not writing.done()
        other.execute("COMMIT")

        assert await writing == "second"

    assert threads and threads[-1] != threading.get_ident()
    assert names_in(file_of(sqlite_url)) == {"first", "second"}


async def test_writes_on_the_loops_thread_leave_the_wal_bounded(
    sqlite_db: Database, sqlite_url: str
) -> None:
    """Commits on the loop's thread never checkpoint; the writer's thread does, often enough
    that the WAL stays near SQLite's own checkpoint size."""
    threads: list[int] = []
    page = 4096
    written = 3 * SQLITE_WAL_AUTOCHECKPOINT * page  # three times the size that checkpoints

    for n in range(written // (3 * page)):  # each row spans about three pages
        await sqlite_db.write(add(f"account-{n}", threads, padding=2 * page))

    assert threads.count(threading.get_ident()) > len(threads) / 2
    wal = Path(f"{file_of(sqlite_url)}-wal").stat().st_size
    assert wal < 1.5 * SQLITE_WAL_AUTOCHECKPOINT * page, f"the WAL grew to {wal} bytes"
