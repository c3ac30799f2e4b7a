"""PostgreSQL keeps each account's QUEUED and PROCESSING jobs in counter rows, one per session
that changed them (migration 0014): admission's sums stay exact, the rows stay few, a fold never
waits on another transaction, and a change adds no index entry."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from collections.abc import AsyncIterator, Collection, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command

from imagegate.services import accounts as account_service
from imagegate.store.db import Database
from imagegate.store.migrate import alembic_config, upgrade_sync
from imagegate.testing.invariants import check_invariants
from tests.conftest import _psycopg_dsn, _truncate_pg, own_pg_database
from tests.factories import add_account, add_job
from tests.integration.conftest import SANDBOX_ROUTES, open_gateway
from tests.integration.limits.conftest import GPT

SLOTS_KEPT: int = importlib.import_module(
    "imagegate.store.migrations.versions.0014_postgres_job_count_slots"
).SLOTS_KEPT

SUMS = (
    "SELECT account_id, sum(queued)::int, sum(processing)::int, count(*)::int"
    " FROM account_job_count_slots GROUP BY account_id"
)
JOBS = (
    "SELECT account_id, count(*) FILTER (WHERE status = 'QUEUED')::int,"
    " count(*) FILTER (WHERE status = 'PROCESSING')::int"
    " FROM jobs WHERE status IN ('QUEUED', 'PROCESSING') GROUP BY account_id"
)
ADMIT = "SELECT queued_jobs, processing_jobs FROM lock_account_for_admission(%s)"
PROCESSING = "UPDATE jobs SET status = 'PROCESSING' WHERE id = %s"
QUEUED = "UPDATE jobs SET status = 'QUEUED' WHERE id = %s"


@pytest.fixture
def pg_url(pg_database_url: str) -> str:
    """The session's migrated PostgreSQL database, emptied."""
    _truncate_pg(pg_database_url)
    return pg_database_url


@pytest.fixture
async def pg_db(pg_url: str) -> AsyncIterator[Database]:
    database = Database(pg_url)
    yield database
    await database.dispose()


def connect(url: str, **options: Any) -> psycopg.Connection[Any]:
    """A session of its own (a backend with its own pid, so a counter row of its own)."""
    return psycopg.connect(_psycopg_dsn(url), **options)


def kept(url: str) -> dict[str, tuple[int, int, int]]:
    """Per account: the counter rows' queued and processing sums, and how many rows."""
    with connect(url) as conn:
        return {row[0]: (row[1], row[2], row[3]) for row in conn.execute(SUMS)}


def counted_from_jobs(url: str) -> dict[str, tuple[int, int]]:
    with connect(url) as conn:
        return {row[0]: (row[1], row[2]) for row in conn.execute(JOBS)}


def in_sessions(url: str, count: int, *statements: tuple[str, tuple[Any, ...]]) -> None:
    """``statements`` run in ``count`` sessions one after the other, each a backend pid of its
    own (as sessions of recycled connections), each session closed before the next opens; on
    return every one of them has ended on the server."""
    pids: set[int] = set()
    while len(pids) < count:
        with connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            assert row is not None
            if row[0] in pids:
                continue  # a reused pid would write the same row
            pids.add(row[0])
            n = len(pids) - 1
            for statement, per_session in statements:
                conn.execute(statement, (per_session[n % len(per_session)],))
    await_ended(url, pids)


def await_ended(url: str, pids: Collection[int]) -> None:
    """Wait until the sessions closed by their clients have ended on the server too (a backend
    exits a moment after its connection closes)."""
    listed = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)"
    with connect(url, autocommit=True) as conn:
        for _ in range(500):
            if conn.execute(listed, (list(pids),)).fetchone() == (0,):
                return
            time.sleep(0.01)
    raise AssertionError(f"sessions still running after 5 s: {sorted(pids)}")


def rows_of_sessions_gone(url: str, account_id: str) -> int:
    """The account's counter rows whose session is no longer among the server's backends."""
    with connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM account_job_count_slots WHERE account_id = %s"
            " AND slot NOT IN (SELECT pid FROM pg_stat_activity)",
            (account_id,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def claim_in_sessions(url: str, job_ids: list[str]) -> None:
    """Each job set PROCESSING by a session of its own."""
    in_sessions(url, len(job_ids), (PROCESSING, tuple(job_ids)))


async def test_a_fold_takes_in_the_rows_of_many_sessions_and_keeps_the_sums(
    pg_url: str, pg_db: Database
) -> None:
    account_id = await add_account(pg_db)
    job_ids = [await add_job(pg_db, account_id) for _ in range(SLOTS_KEPT + 8)]
    claim_in_sessions(pg_url, job_ids[: SLOTS_KEPT + 4])
    queued, processing = 4, SLOTS_KEPT + 4
    assert kept(pg_url)[account_id][:2] == (queued, processing)
    assert kept(pg_url)[account_id][2] > SLOTS_KEPT

    with connect(pg_url) as conn:
        assert conn.execute(ADMIT, (account_id,)).fetchone() == (queued, processing)
        conn.commit()
        assert conn.execute(ADMIT, (account_id,)).fetchone() == (queued, processing)
    # Every ended session's row was folded into the admitting session's; the rows left are the
    # admitting session's and the factory's (its pool still holds its session).
    assert kept(pg_url)[account_id] == (queued, processing, 2)
    assert rows_of_sessions_gone(pg_url, account_id) == 1  # the admitting session's, now ended
    assert counted_from_jobs(pg_url) == {account_id: (queued, processing)}


async def test_a_fold_leaves_the_rows_of_sessions_still_open(pg_url: str, pg_db: Database) -> None:
    """More live sessions than the bound (several processes) change one account's jobs: their
    rows stay, since each would come back with its session's next change, until they end."""
    account_id = await add_account(pg_db)
    job_ids = [await add_job(pg_db, account_id) for _ in range(SLOTS_KEPT + 4)]
    counts = (0, SLOTS_KEPT + 4)
    pids = []
    with contextlib.ExitStack() as stack:
        for job_id in job_ids:
            conn = stack.enter_context(connect(pg_url, autocommit=True))
            conn.execute(PROCESSING, (job_id,))
            pids.append(conn.info.backend_pid)
        with connect(pg_url) as conn:
            assert conn.execute(ADMIT, (account_id,)).fetchone() == counts
            conn.commit()
        # Theirs and the factory's (its pool still holds its session).
        assert kept(pg_url)[account_id] == (*counts, SLOTS_KEPT + 5)
    await_ended(pg_url, pids)

    with connect(pg_url) as conn:
        assert conn.execute(ADMIT, (account_id,)).fetchone() == counts
        conn.commit()
    # Once they ended, they are folded: left are the admitting session's row and the factory's.
    assert kept(pg_url)[account_id] == (*counts, 2)


async def test_a_fold_skips_a_row_held_by_an_open_transaction_without_waiting(
    pg_url: str, pg_db: Database
) -> None:
    account_id = await add_account(pg_db)
    job_ids = [await add_job(pg_db, account_id) for _ in range(SLOTS_KEPT + 4)]
    claim_in_sessions(pg_url, job_ids[:SLOTS_KEPT])
    held_job, after_job = job_ids[SLOTS_KEPT], job_ids[SLOTS_KEPT + 1]
    total = len(job_ids)

    with connect(pg_url) as holder, connect(pg_url) as admitting:
        holder.execute("UPDATE jobs SET status = 'PROCESSING' WHERE id = %s", (held_job,))
        holder.commit()  # the holder's row now exists; its next change locks it
        holder.execute("UPDATE jobs SET status = 'PROCESSING' WHERE id = %s", (after_job,))
        # A fold that waited on the holder's row would be cancelled here, not hang.
        admitting.execute("SET statement_timeout = '5s'")
        before = admitting.execute(ADMIT, (account_id,)).fetchone()
        admitting.commit()
        # The holder's second change is not committed: the job counts as it was.
        assert before == (total - SLOTS_KEPT - 1, SLOTS_KEPT + 1)
        # The admitting session's row, the held one and the factory's (a session still open).
        assert kept(pg_url)[account_id][2] == 3
        assert rows_of_sessions_gone(pg_url, account_id) == 0
        holder.commit()
        after = admitting.execute(ADMIT, (account_id,)).fetchone()
        admitting.commit()
    assert after == (total - SLOTS_KEPT - 2, SLOTS_KEPT + 2)
    assert counted_from_jobs(pg_url) == {account_id: after}


async def test_a_status_change_adds_no_index_entry(pg_url: str, pg_db: Database) -> None:
    """Each change updates its session's row in place (a HOT update): 1,000 changes leave the
    index as it was, where a row appended per change adds an entry each."""
    account_id = await add_account(pg_db)
    job_id = await add_job(pg_db, account_id)
    index_size = "SELECT pg_relation_size('account_job_count_slots_pkey')"
    hot_updates = (
        "SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'account_job_count_slots'"
    )
    with connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE jobs SET status = 'PROCESSING' WHERE id = %s", (job_id,))
        conn.execute("SELECT pg_stat_force_next_flush()")
        size_before = conn.execute(index_size).fetchone()
        hot_before = conn.execute(hot_updates).fetchone()
        for n in range(1000):
            status = "QUEUED" if n % 2 == 0 else "PROCESSING"
            conn.execute("UPDATE jobs SET status = %s WHERE id = %s", (status, job_id))
        conn.execute("SELECT pg_stat_force_next_flush()")
        size_after = conn.execute(index_size).fetchone()
        conn.execute("SELECT pg_stat_clear_snapshot()")
        hot_after = conn.execute(hot_updates).fetchone()
    assert size_after == size_before
    assert hot_before is not None and hot_after is not None
    assert hot_after[0] - hot_before[0] >= 900, (hot_before, hot_after)
    assert kept(pg_url)[account_id] == (0, 1, 2)  # the factory's session's row and this one's


@pytest.mark.parametrize(
    ("settings", "limits"),
    [({"max_queued_jobs_per_account": 6}, {}), ({}, {"max_concurrent_jobs": 6})],
    ids=["max-queued", "max-concurrent"],
)
async def test_the_caps_refuse_at_the_exact_bound_with_counts_in_many_rows(
    pg_url: str, tmp_path: Path, settings: dict[str, Any], limits: dict[str, int]
) -> None:
    """Jobs changed by more sessions than admission leaves unfolded: the cap still admits
    exactly up to it."""
    async with open_gateway(pg_url, tmp_path, routes=SANDBOX_ROUTES, **settings) as gw:
        if limits:
            await account_service.set_account_limits(gw.runtime.db, gw.account_id, limits)
        submitted = [(await gw.submit(GPT)).json()["jobId"] for _ in range(4)]
        # Jobs go PROCESSING and back, each time in a session of its own: rows, not counts, grow.
        jobs = tuple(submitted)
        in_sessions(pg_url, SLOTS_KEPT + 2, (PROCESSING, jobs), (QUEUED, jobs))
        assert kept(pg_url)[gw.account_id][2] > SLOTS_KEPT

        statuses = [(await gw.submit(GPT)).status_code for _ in range(3)]
        assert statuses == [202, 202, 429]
        assert kept(pg_url)[gw.account_id][:2] == (6, 0)
        assert counted_from_jobs(pg_url) == {gw.account_id: (6, 0)}


async def test_counts_stay_exact_while_submits_claims_completions_and_cancels_race(
    pg_url: str, tmp_path: Path
) -> None:
    unlimited = {"max_queued_jobs_per_account": 1_000, "rate_limit_submit": ""}
    async with open_gateway(
        pg_url, tmp_path, credits=10_000, routes=SANDBOX_ROUTES, **unlimited
    ) as gw:

        async def submit_and_cancel(n: int) -> None:
            response = await gw.submit(GPT, gw.live_key)
            assert response.status_code == 202, response.text
            if n % 3 == 0:
                await gw.http.post(
                    f"/v2/jobs/{response.json()['jobId']}/cancel", headers=gw.headers(gw.live_key)
                )

        async def work(owner: str) -> None:
            worker = gw.runtime.worker(concurrency=4, owner=owner)
            for _ in range(40):
                await worker.drain(max_rounds=2)
                await asyncio.sleep(0.005)

        await asyncio.gather(*(submit_and_cancel(n) for n in range(120)), work("one"), work("two"))
        sums = kept(pg_url)
        assert {account: row[:2] for account, row in sums.items() if row[:2] != (0, 0)} == (
            counted_from_jobs(pg_url)
        )
        await gw.drain()
        tally = await check_invariants(pg_url)
    assert tally.total == 120
    assert tally.by_status["COMPLETED"] > 0 and tally.by_status["CANCELLED"] > 0, tally
    # One row per session that changed the account's jobs, however many changes.
    assert sums[gw.account_id][2] <= SLOTS_KEPT + 1


@pytest.fixture
def empty_pg_url(pg_server_url: str) -> Iterator[str]:
    """A PostgreSQL database of this test's own with no schema yet."""
    with own_pg_database(pg_server_url, "imagegate_migration") as url:
        yield url


CHANGE_LOG_SUMS = (
    "SELECT account_id, sum(queued)::int, sum(processing)::int FROM account_job_count_changes"
    " GROUP BY account_id HAVING sum(queued) <> 0 OR sum(processing) <> 0"
)


async def test_the_upgrade_copies_the_counts_and_the_downgrade_restores_the_change_log(
    empty_pg_url: str,
) -> None:
    url = empty_pg_url
    upgrade_sync(url, "0013")
    db = Database(url)
    try:
        first, second = await add_account(db), await add_account(db)
        jobs = [await add_job(db, first) for _ in range(5)] + [await add_job(db, second)]
        await add_job(db, second, status="PROCESSING")
        await add_job(db, first, status="COMPLETED")
    finally:
        await db.dispose()
    with connect(url, autocommit=True) as conn:
        conn.execute("UPDATE jobs SET status = 'PROCESSING' WHERE id = ANY(%s)", (jobs[:2],))
        conn.execute("UPDATE jobs SET status = 'CANCELLED' WHERE id = %s", (jobs[2],))
        conn.execute(ADMIT, (second,))  # a fold of 0009, then more changes after it
        conn.execute("UPDATE jobs SET status = 'COMPLETED' WHERE id = %s", (jobs[5],))
        logged = {row[0]: (row[1], row[2]) for row in conn.execute(CHANGE_LOG_SUMS)}
    expected = {first: (2, 2), second: (0, 1)}
    assert logged == expected == counted_from_jobs(url)

    upgrade_sync(url)
    assert {account: row[:2] for account, row in kept(url).items()} == expected
    with connect(url, autocommit=True) as conn:
        assert conn.execute(ADMIT, (first,)).fetchone() == (2, 2)
        conn.execute("UPDATE jobs SET status = 'COMPLETED' WHERE id = %s", (jobs[0],))
    with connect(url, autocommit=True) as conn:
        conn.execute("UPDATE jobs SET status = 'PROCESSING' WHERE id = %s", (jobs[3],))
    expected = {first: (1, 2), second: (0, 1)}
    assert {account: row[:2] for account, row in kept(url).items()} == expected

    command.downgrade(alembic_config(url), "0013")
    with connect(url, autocommit=True) as conn:
        assert {row[0]: (row[1], row[2]) for row in conn.execute(CHANGE_LOG_SUMS)} == expected
        assert conn.execute(ADMIT, (first,)).fetchone() == (1, 2)
        conn.execute("UPDATE jobs SET status = 'PROCESSING' WHERE id = %s", (jobs[4],))
        assert conn.execute(ADMIT, (first,)).fetchone() == (0, 3)
        missing = conn.execute(
            "SELECT to_regclass('account_job_count_slots'),"
            " (SELECT count(*) FROM pg_proc WHERE proname = 'add_job_counts')"
        ).fetchone()
    assert missing == (None, 0)
    assert counted_from_jobs(url) == {first: (0, 3), second: (0, 1)}
