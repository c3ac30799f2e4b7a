"""SQLite writes share commits: many concurrent ``transaction()`` blocks, one writer, each block
answered only after the commit that holds its writes, a failing block rolled back alone."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest
from sqlalchemy import event, select

from imagegate.store import accounts
from imagegate.store.db import Database
from imagegate.store.tables import accounts as accounts_table


class Refused(Exception):
    pass


def count_commits(db: Database) -> list[int]:
    commits = [0]

    @event.listens_for(db.engine.sync_engine, "commit")
    def _on_commit(_conn: Any) -> None:
        commits[0] += 1

    return commits


async def insert(db: Database, name: str, *, fail: bool = False) -> bool:
    """Insert an account named ``name``; True when a fresh read finds it once the block is left."""
    async with db.transaction() as conn:
        await accounts.insert_account(
            conn, account_id=name, name=name, email=None, webhook_secret="s", now=0
        )
        await asyncio.sleep(0)  # let the other blocks queue behind this one
        if fail:
            raise Refused(name)
    async with db.read() as conn:
        found = await conn.scalar(select(accounts_table.c.id).where(accounts_table.c.id == name))
    return found == name


async def stored_names(db: Database) -> set[str]:
    async with db.read() as conn:
        return set((await conn.scalars(select(accounts_table.c.id))).all())


async def test_concurrent_writes_share_commits_and_each_is_committed_when_answered(
    sqlite_db: Database,
) -> None:
    commits = count_commits(sqlite_db)
    names = [f"account-{n}" for n in range(60)]

    visible = await asyncio.gather(*(insert(sqlite_db, name) for name in names))

    assert all(visible), "a caller was answered before its write was committed"
    assert await stored_names(sqlite_db) == set(names)
    assert commits[0] < len(names) / 4, f"{commits[0]} commits for {len(names)} writes"


async def test_a_failing_block_rolls_back_only_itself(sqlite_db: Database) -> None:
    names = [f"account-{n}" for n in range(30)]
    failing = {"account-7", "account-8", "account-21"}

    results = await asyncio.gather(
        *(insert(sqlite_db, name, fail=name in failing) for name in names),
        return_exceptions=True,
    )

    for name, result in zip(names, results, strict=True):
        if name in failing:
            assert isinstance(result, Refused) and result.args == (name,)
        else:
            assert result is True
    assert await stored_names(sqlite_db) == set(names) - failing


async def test_a_write_that_fails_in_the_database_leaves_the_others(sqlite_db: Database) -> None:
    await insert(sqlite_db, "taken")

    results = await asyncio.gather(
        insert(sqlite_db, "before"),
        insert(sqlite_db, "taken"),  # primary key violation inside the shared transaction
        insert(sqlite_db, "after"),
        return_exceptions=True,
    )

    assert results[0] is True and results[2] is True
    assert isinstance(results[1], Exception) and "UNIQUE" in str(results[1])
    assert await stored_names(sqlite_db) == {"taken", "before", "after"}


async def test_a_write_inside_another_is_refused_instead_of_waiting_forever(
    sqlite_db: Database,
) -> None:
    async with sqlite_db.transaction():
        with pytest.raises(RuntimeError, match="cannot open another"):
            async with sqlite_db.transaction():
                pass
    assert await insert(sqlite_db, "still-writable")


async def test_a_task_that_wrote_is_freed_when_it_ends(sqlite_db: Database) -> None:
    """Nothing of the writer's keeps a finished task (its job, its coroutine) alive. The wait for
    the writer's grant leaves a cancelled timer in the loop until the busy timeout, behind the
    timers due before it (in a gateway, always some: heartbeats, polls)."""
    due_first = asyncio.get_running_loop().call_later(5, lambda: None)  # before the busy timeout
    task = asyncio.create_task(insert(sqlite_db, "written"))
    assert await task
    finished = weakref.ref(task)
    del task
    await asyncio.sleep(0)  # the callback that woke this test holds the task until it returns
    gc.collect()
    assert finished() is None
    due_first.cancel()


def test_the_writer_serves_each_event_loop_in_turn(sqlite_url: str) -> None:
    database = Database(sqlite_url)

    assert asyncio.run(insert(database, "first-loop"))
    assert asyncio.run(insert(database, "second-loop"))
    assert asyncio.run(stored_names(database)) == {"first-loop", "second-loop"}
    asyncio.run(database.dispose())
