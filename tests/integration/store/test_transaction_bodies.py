"""A whole transaction passed as one body (``Database.write`` / ``read_with``): on SQLite many
bodies run in one trip to the writer's thread and share one commit, each answered only after it,
a failing body rolled back alone, and many reads share a trip to a reader; on PostgreSQL the same
body runs on a body thread, and reads in autocommit on a read-only connection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
import sqlalchemy.exc
from sqlalchemy import event, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util import await_only

from imagegate.errors import ServiceUnavailable
from imagegate.store import accounts
from imagegate.store import jobs as job_store
from imagegate.store.db import WRITE_EACH_MAX, Database
from imagegate.store.tables import accounts as accounts_table
from imagegate.store.tables import jobs
from tests.conftest import _psycopg_dsn, _truncate_pg
from tests.factories import add_account, add_job


class Refused(Exception):
    pass


def add(name: str, *, fail: bool = False) -> Any:
    async def body(conn: AsyncConnection) -> str:
        await accounts.insert_account(
            conn, account_id=name, name=name, email=None, webhook_secret="s", now=0
        )
        if fail:
            raise Refused(name)
        return name

    return body


async def stored_names(db: Database) -> set[str]:
    async with db.read() as conn:
        return set((await conn.scalars(select(accounts_table.c.id))).all())


async def visible_when_answered(db: Database, name: str) -> bool:
    assert await db.write(add(name)) == name
    found = await db.read_with(lambda conn: accounts.get_account(conn, name))
    return found is not None


async def test_bodies_share_commits_and_each_is_committed_when_answered(
    sqlite_db: Database,
) -> None:
    writer = sqlite_db._writer
    assert writer is not None
    names = [f"account-{n}" for n in range(80)]
    visible = await asyncio.gather(*(visible_when_answered(sqlite_db, name) for name in names))

    assert all(visible), "a caller was answered before its write was committed"
    assert await stored_names(sqlite_db) == set(names)
    assert 0 < writer.commits < len(names) / 4, f"{writer.commits} commits for 80 bodies"


async def test_a_failing_body_rolls_back_only_its_own_writes(db: Database) -> None:
    names = [f"account-{n}" for n in range(30)]
    failing = {"account-3", "account-4", "account-17"}

    results = await asyncio.gather(
        *(db.write(add(name, fail=name in failing)) for name in names), return_exceptions=True
    )

    for name, result in zip(names, results, strict=True):
        if name in failing:
            assert isinstance(result, Refused), (name, result)
        else:
            assert result == name
    assert await stored_names(db) == set(names) - failing


async def test_bodies_that_all_succeed_share_one_transaction_without_savepoints(
    sqlite_db: Database,
) -> None:
    """Each savepoint and its release were two statements more per body on the writer's thread.
    Bodies queued together that all succeed run in their transaction as they come."""
    statements: list[str] = []

    @event.listens_for(sqlite_db.engine.sync_engine, "connect")
    def trace(_dbapi_connection: Any, record: Any) -> None:
        await_only(record.driver_connection.set_trace_callback(statements.append))

    names = [f"account-{n}" for n in range(30)]
    assert await asyncio.gather(*(sqlite_db.write(add(name)) for name in names)) == names

    assert await stored_names(sqlite_db) == set(names)
    assert statements.count("BEGIN IMMEDIATE") == statements.count("COMMIT") < len(names)
    assert not [sql for sql in statements if sql.startswith(("SAVEPOINT", "RELEASE"))]


async def test_bodies_before_a_failing_one_are_written_once(sqlite_db: Database) -> None:
    """The failing body's batch is rolled back and runs again with a savepoint per body: the
    bodies before it, run twice, keep one run's writes and answer with its result."""
    runs: dict[str, int] = {}

    def counted(name: str, *, fail: bool = False) -> Any:
        inner = add(name, fail=fail)

        async def body(conn: AsyncConnection) -> str:
            runs[name] = runs.get(name, 0) + 1
            return str(await inner(conn))

        return body

    names = [f"account-{n}" for n in range(10)]
    results = await asyncio.gather(
        *(sqlite_db.write(counted(name, fail=name == "account-5")) for name in names),
        return_exceptions=True,
    )

    assert results[:5] == names[:5] and results[6:] == names[6:]
    assert isinstance(results[5], Refused)
    assert await stored_names(sqlite_db) == set(names) - {"account-5"}
    assert runs == {name: 2 if name <= "account-5" else 1 for name in names}


async def test_a_body_whose_caller_is_cancelled_before_its_turn_is_never_run(
    sqlite_db: Database,
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with sqlite_db.transaction() as conn:
            await add("holder")(conn)
            entered.set()
            await release.wait()

    holding = asyncio.ensure_future(holder())
    await entered.wait()
    cancelled = asyncio.ensure_future(sqlite_db.write(add("cancelled")))
    await asyncio.sleep(0)  # queued behind the open block
    cancelled.cancel()
    release.set()
    await holding

    assert await sqlite_db.write(add("after")) == "after"
    assert cancelled.cancelled()
    assert await stored_names(sqlite_db) == {"holder", "after"}


async def test_bodies_and_blocks_interleave_in_one_batch(sqlite_db: Database) -> None:
    async def block(name: str) -> None:
        async with sqlite_db.transaction() as conn:
            await add(name)(conn)
            await asyncio.sleep(0)

    bodies = [sqlite_db.write(add(f"body-{n}")) for n in range(20)]
    blocks = [block(f"block-{n}") for n in range(20)]
    await asyncio.gather(*(item for pair in zip(bodies, blocks, strict=True) for item in pair))

    assert len(await stored_names(sqlite_db)) == 40


async def test_a_block_first_on_a_new_writer_connection_keeps_its_writes(
    sqlite_db: Database,
) -> None:
    """The writer's first batch on a new connection: a block, then bodies queued while it ran.
    Making the synchronous connection the bodies run on once ran SQLAlchemy's first-connect
    ROLLBACK inside the batch's transaction, and the block's write was lost."""
    async with sqlite_db.transaction() as conn:
        await add("block")(conn)
        body = asyncio.ensure_future(sqlite_db.write(add("body")))
        await asyncio.sleep(0)  # the body queues behind the open block, in the same batch

    assert await body == "body"
    assert await stored_names(sqlite_db) == {"block", "body"}


async def test_bodies_waiting_past_the_busy_timeout_are_given_up_and_never_run(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a block holds the writer past the busy timeout, the bodies queued behind it get
    ``ServiceUnavailable`` (one timer serves them all) and are skipped; later ones are served."""
    monkeypatch.setattr("imagegate.store.db.SQLITE_BUSY_TIMEOUT_MS", 200)
    async with sqlite_db.transaction() as conn:
        await add("block")(conn)
        waiting = [asyncio.ensure_future(sqlite_db.write(add(f"late-{n}"))) for n in range(3)]
        results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(result, ServiceUnavailable) for result in results), results

    assert await sqlite_db.write(add("after")) == "after"
    assert await stored_names(sqlite_db) == {"block", "after"}


async def test_a_body_that_waits_on_anything_but_its_connection_is_refused(
    sqlite_db: Database,
) -> None:
    async def sleeps(conn: AsyncConnection) -> None:
        await add("never")(conn)
        await asyncio.sleep(0)  # suspends once, as any real wait would

    with pytest.raises(RuntimeError, match="awaited something other than its connection"):
        await sqlite_db.write(sleeps)
    assert await stored_names(sqlite_db) == set()


async def test_a_body_reads_a_snapshot_of_committed_data(db: Database) -> None:
    account_id = await add_account(db)
    job_id = await add_job(db, account_id)

    job = await db.read_with(lambda conn: job_store.get_job(conn, job_id, account_id))
    other = await db.read_with(lambda conn: job_store.get_job(conn, job_id, "someone-else"))

    assert job is not None and job.id == job_id
    assert other is None


async def test_admission_counts_follow_every_status_change(db: Database) -> None:
    # SQLite keeps one row per account; PostgreSQL one per account and session (0014).
    first, second = await add_account(db), await add_account(db)
    queued = [await add_job(db, first) for _ in range(5)] + [await add_job(db, second)]

    async def counts() -> dict[str, tuple[int, int]]:
        async with db.read() as conn:
            if db.is_postgres:
                query = (
                    "SELECT account_id, sum(queued) AS queued, sum(processing) AS processing"
                    " FROM account_job_count_slots GROUP BY account_id"
                )
            else:
                query = "SELECT * FROM account_job_counts"
            rows = await conn.execute(text(query))
            return {row.account_id: (row.queued, row.processing) for row in rows}

    async def status(job_id: str, value: str, **more: str) -> None:
        async with db.transaction() as conn:
            await conn.execute(update(jobs).where(jobs.c.id == job_id).values(status=value, **more))

    assert await counts() == {first: (5, 0), second: (1, 0)}
    await status(queued[0], "PROCESSING")
    await status(queued[1], "PROCESSING")
    await status(queued[1], "COMPLETED")
    await status(queued[2], "CANCELLED")
    await status(queued[3], "QUEUED")  # no change of status
    await status(queued[4], "PROCESSING", account_id=second)
    assert await counts() == {first: (1, 1), second: (1, 1)}
    async with db.transaction() as conn:
        account, unfinished = await accounts.lock_for_admission(conn, first)
        assert account is not None and account.id == first
        assert unfinished == accounts.UnfinishedJobs(1, 1)
        assert (await accounts.lock_for_admission(conn, "nobody")) == (
            None,
            accounts.UnfinishedJobs(0, 0),
        )
        _, unfinished = await accounts.lock_for_admission(conn, second)
        assert unfinished == accounts.UnfinishedJobs(1, 1)
    assert await counts() == {first: (1, 1), second: (1, 1)}


async def test_concurrent_reads_share_trips_and_a_failing_one_fails_alone(db: Database) -> None:
    await db.write(add("someone"))
    checkouts = [0]
    # SQLite: a trip to a reader's thread; PostgreSQL: a batch on a body thread's connection.
    engine = db._bodies()._reader if db.is_postgres else db._reader.sync_engine

    @event.listens_for(engine, "checkout")
    def _on_checkout(*_: Any) -> None:
        checkouts[0] += 1

    async def broken(conn: AsyncConnection) -> None:
        await accounts.get_account(conn, "someone")
        raise Refused("broken")

    async def bad_statement(conn: AsyncConnection) -> None:
        # On PostgreSQL a failed statement aborts its transaction: the reads after it still run.
        await conn.execute(text("SELECT no_such_column FROM accounts"))

    failing = {7: broken, 8: bad_statement}
    reads = [
        db.read_with(failing.get(n) or (lambda conn: accounts.get_account(conn, "someone")))
        for n in range(60)
    ]
    results = await asyncio.gather(*reads, return_exceptions=True)

    assert isinstance(results[7], Refused)
    # (SQLite reports a missing column as an OperationalError, which reads as "unavailable".)
    assert isinstance(results[8], sqlalchemy.exc.DBAPIError | ServiceUnavailable), results[8]
    found = [result for n, result in enumerate(results) if n not in failing]
    assert all(getattr(row, "id", None) == "someone" for row in found), found
    assert checkouts[0] < 60 / 4, f"{checkouts[0]} trips for 60 reads"


async def test_what_a_read_body_writes_is_never_kept(db: Database) -> None:
    if db.is_postgres:  # the read connection is read-only: the write is refused
        with pytest.raises(sqlalchemy.exc.InternalError, match="read-only transaction"):
            await db.read_with(add("written-by-a-read"))
    else:  # rolled back with the read's snapshot
        assert await db.read_with(add("written-by-a-read")) == "written-by-a-read"
    assert await stored_names(db) == set()


@pytest.fixture
async def pg_db(pg_database_url: str) -> AsyncIterator[Database]:
    """PostgreSQL only: SQLite's reads are snapshots inside ``BEGIN … ROLLBACK`` on the
    reader's thread, with no connection to lose between batches."""
    _truncate_pg(pg_database_url)
    database = Database(pg_database_url)
    yield database
    await database.dispose()


async def test_json_written_by_a_body_on_postgresql_reads_back_as_written(
    pg_db: Database,
) -> None:
    """Body threads encode JSON binds with orjson, and with the standard library what orjson
    refuses: here an integer past 64 bits."""
    account_id = await add_account(pg_db)
    job_id = await add_job(pg_db, account_id)
    plain = {"prompt": "un phare au crépuscule", "seed": 7, "size": [1024, 0.5], "n": None}
    large = {**plain, "seed": 10**20}

    async def write(conn: AsyncConnection) -> None:
        await conn.execute(update(jobs).where(jobs.c.id == job_id).values(input=plain))
        await conn.execute(update(jobs).where(jobs.c.id == job_id).values(params=large))

    await pg_db.write(write)

    async with pg_db.read() as conn:
        row = (await conn.execute(select(jobs.c.input, jobs.c.params))).one()
    assert (row.input, row.params) == (plain, large)


async def test_postgres_read_bodies_run_without_begin_or_rollback(pg_db: Database) -> None:
    """Each statement of a read body is its own transaction (autocommit), on a read-only
    session: no BEGIN or ROLLBACK round trips around a batch of reads."""

    async def two_statements(conn: AsyncConnection) -> tuple[Any, Any, str]:
        first = (await conn.execute(text("SELECT now()"))).scalar_one()
        await conn.execute(text("SELECT pg_sleep(0.002)"))
        second = (await conn.execute(text("SELECT now()"))).scalar_one()
        read_only = (await conn.execute(text("SHOW transaction_read_only"))).scalar_one()
        return first, second, read_only

    first, second, read_only = await pg_db.read_with(two_statements)

    assert second > first  # inside one transaction now() would not move
    assert read_only == "on"


async def test_a_read_that_finds_its_connection_killed_runs_again_on_a_new_one(
    pg_db: Database,
) -> None:
    """PostgreSQL's read connection is not pinged before a batch."""
    await pg_db.write(add("someone"))

    async def backend(conn: AsyncConnection) -> int:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())

    killed = await pg_db.read_with(backend)
    async with pg_db.transaction() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": killed})

    found = await asyncio.gather(
        *(pg_db.read_with(lambda conn: accounts.get_account(conn, "someone")) for _ in range(5))
    )

    assert [row.id if row else None for row in found] == ["someone"] * 5
    assert await pg_db.read_with(backend) != killed


async def test_reads_of_jobs_queued_together_are_one_statement_each_answered_alone(
    db: Database,
) -> None:
    mine, theirs = await add_account(db), await add_account(db)
    my_jobs = [await add_job(db, mine) for _ in range(3)]
    their_job = await add_job(db, theirs)
    statements: list[str] = []
    # SQLite reads each item alone (in shared trips); PostgreSQL's batch reads them together.
    engine = db._bodies()._reader if db.is_postgres else db._reader.sync_engine

    @event.listens_for(engine, "before_cursor_execute")
    def _on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    async def broken(conn: AsyncConnection) -> None:
        raise Refused("broken")

    wanted = [(job_id, mine) for job_id in my_jobs] + [(their_job, mine), ("no-such-job", mine)]
    found = await asyncio.gather(
        db.read_with(broken),  # runs at once: the reads after it make the next batch
        *(db.read_each(job_store.get_own_jobs, pair) for pair in wanted),
        db.read_each(job_store.get_own_jobs, (my_jobs[0], mine)),  # asked twice
        return_exceptions=True,
    )

    assert isinstance(found[0], Refused)
    assert [getattr(job, "id", job) for job in found[1:]] == [*my_jobs, None, None, my_jobs[0]]
    if db.is_postgres:
        assert sum("FROM jobs" in statement for statement in statements) == 1, statements


async def test_a_failing_read_of_many_fails_each_of_its_items_and_no_other_read(
    db: Database,
) -> None:
    await db.write(add("someone"))

    async def refuses(conn: AsyncConnection, items: list[str]) -> list[str]:
        raise Refused(",".join(items))

    found = await asyncio.gather(
        *(db.read_each(refuses, str(n)) for n in range(3)),
        db.read_with(lambda conn: accounts.get_account(conn, "someone")),
        return_exceptions=True,
    )

    assert all(isinstance(error, Refused) for error in found[:3]), found
    assert getattr(found[3], "id", None) == "someone"


def queued_behind(db: Database, many: Any, count: int) -> None:
    """On a PostgreSQL body thread, in a batch of ``many``: until ``count`` items of ``many``
    are queued for its next batch (or 10 s went by)."""
    deadline = time.monotonic() + 10
    while len(db._bodies()._writes.get(many) or ()) < count and time.monotonic() < deadline:
        time.sleep(0.001)


async def test_writes_of_many_queued_together_commit_together_or_fail_together(
    db: Database,
) -> None:
    async def insert_each(conn: AsyncConnection, names: list[str]) -> list[str]:
        if names == ["alone"] and db.is_postgres:
            queued_behind(db, insert_each, 2)
        for name in names:
            await add(name)(conn)
        if "refused" in names:
            raise Refused(",".join(names))
        return names

    # The first of each gather runs alone; the others queue meanwhile, and on PostgreSQL make
    # one batch, the second gather's once both are queued (on SQLite each runs alone, in its
    # savepoint of the writer's transaction).
    written = await asyncio.gather(*(db.write_each(insert_each, f"kept-{n}") for n in range(4)))
    failed = await asyncio.gather(
        db.write_each(insert_each, "alone"),
        db.write_each(insert_each, "refused"),
        db.write_each(insert_each, "with-refused"),
        return_exceptions=True,
    )

    assert written == ["kept-0", "kept-1", "kept-2", "kept-3"]
    names = await stored_names(db)
    assert {"kept-0", "kept-1", "kept-2", "kept-3", "alone"} <= names
    assert failed[0] == "alone"
    assert isinstance(failed[1], Refused)
    assert "refused" not in names
    if db.is_postgres:
        assert isinstance(failed[2], Refused), "its batch failed: nothing of it may be kept"
        assert "with-refused" not in names
    else:
        assert failed[2] == "with-refused"


async def test_writes_of_many_queued_behind_a_batch_start_while_the_event_loop_is_busy(
    pg_db: Database, pg_database_url: str
) -> None:
    """The body thread that ran a ``write_each`` batch takes the items queued meanwhile as the
    next batch itself, as soon as its batch has committed: the next batch waits for no turn of
    the event loop, which answers the first batch's callers meanwhile."""

    async def insert_each(conn: AsyncConnection, names: list[str]) -> list[str]:
        if "first" in names:  # waits for the test to let it go
            await conn.execute(text("SELECT pg_advisory_xact_lock(7001)"))
        for name in names:
            await add(name)(conn)
        return names

    with psycopg.connect(_psycopg_dsn(pg_database_url), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(7001)")
        first = asyncio.create_task(pg_db.write_each(insert_each, "first"))
        queued = pg_db._bodies()._writes
        async with asyncio.timeout(10):
            while insert_each not in queued:
                await asyncio.sleep(0.005)
        second = asyncio.create_task(pg_db.write_each(insert_each, "second"))
        async with asyncio.timeout(10):
            while not queued.get(insert_each):
                await asyncio.sleep(0.005)

        # The event loop is held up from here until "second" is committed (or 10 s went by).
        holder.execute("SELECT pg_advisory_unlock(7001)")
        deadline = time.monotonic() + 10
        found = None
        while found is None and time.monotonic() < deadline:
            found = holder.execute("SELECT id FROM accounts WHERE id = 'second'").fetchone()
            time.sleep(0.01)

    assert found == ("second",)
    assert await first == "first"
    assert await second == "second"


async def test_writes_of_many_queued_in_one_turn_after_it_make_one_batch(pg_db: Database) -> None:
    """With ``after_turn``, the first item waits for the event loop's turn to end, and the items
    queued meanwhile share its batch (up to ``WRITE_EACH_MAX`` of them), where without it the
    first starts alone at once and the others make the next batch."""
    batches: list[list[str]] = []

    async def insert_each(conn: AsyncConnection, names: list[str]) -> list[str]:
        batches.append(list(names))
        for name in names:
            await add(name)(conn)
        return names

    names = [f"turn-{n}" for n in range(WRITE_EACH_MAX + 6)]
    written = await asyncio.gather(
        *(pg_db.write_each(insert_each, name, after_turn=True) for name in names)
    )
    alone = await asyncio.gather(*(pg_db.write_each(insert_each, f"at-once-{n}") for n in range(3)))

    assert written == names
    assert alone == ["at-once-0", "at-once-1", "at-once-2"]
    assert batches == [
        names[:WRITE_EACH_MAX],
        names[WRITE_EACH_MAX:],
        ["at-once-0"],
        ["at-once-1", "at-once-2"],
    ]
    assert set(names) <= await stored_names(pg_db)
