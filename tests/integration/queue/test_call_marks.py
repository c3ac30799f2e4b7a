"""A first paid call is recorded in flight (``call_started_at``) before it is made, fenced by the
job's lease, on SQLite and PostgreSQL alike; on PostgreSQL the marks of jobs calling at once are
written together, one statement that commits by itself."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from sqlalchemy import text

from imagegate.queue import claims
from imagegate.queue.transitions import JobTransitions, Lease, LeaseLost
from imagegate.store import jobs as job_store
from imagegate.store.db import Database
from imagegate.store.jobs import JobRow
from imagegate.testing.clock import FakeClock
from tests.conftest import _truncate_pg, fresh_sqlite, make_settings
from tests.factories import add_account, add_job
from tests.integration.queue.conftest import statements_sent, whole_reads_of_jobs

LEASE_MS = 30_000


async def leased_jobs(db: Database, count: int, now: int, owner: str = "w1") -> list[JobRow]:
    account_id = await add_account(db, credits=0)
    for _ in range(count):
        await add_job(db, account_id, now=now - 1)
    async with db.transaction() as conn:
        leased = await claims.claim(
            conn, owner=owner, token=str(uuid.uuid4()), now=now, lease_ms=LEASE_MS, limit=count
        )
    assert len(leased) == count
    return leased


async def calls_in_flight(db: Database, jobs: list[JobRow]) -> list[int | None]:
    async with db.read() as conn:
        found = [await job_store.get_job(conn, job.id) for job in jobs]
    return [job.call_started_at if job is not None else None for job in found]


async def test_first_call_marks_record_each_call_and_refuse_a_lost_lease(
    database_url: str, tmp_path: Path
) -> None:
    db = Database(database_url)
    try:
        clock = FakeClock()
        moves = JobTransitions(db, clock, make_settings(database_url, tmp_path))
        now = clock.now_ms()
        jobs = await leased_jobs(db, 5, now)
        leases = [Lease(job.id, job.lease_token or "") for job in jobs]
        leases[2] = Lease(jobs[2].id, "a lease taken over by another worker")

        outcomes = await asyncio.gather(
            *(moves.calling(lease, job) for lease, job in zip(leases, jobs, strict=True)),
            return_exceptions=True,
        )

        assert [type(outcome) for outcome in outcomes] == [
            type(None),
            type(None),
            LeaseLost,
            type(None),
            type(None),
        ]
        assert await calls_in_flight(db, jobs) == [now, now, None, now, now]
    finally:
        await db.dispose()


async def test_first_call_marks_of_jobs_calling_at_once_share_a_statement_on_postgresql(
    pg_database_url: str, tmp_path: Path
) -> None:
    _truncate_pg(pg_database_url)
    db = Database(pg_database_url)
    try:
        clock = FakeClock()
        moves = JobTransitions(db, clock, make_settings(pg_database_url, tmp_path))
        now = clock.now_ms()
        jobs = await leased_jobs(db, 12, now)
        await db.read_with(lambda conn: job_store.get_job(conn, jobs[0].id))  # threads started

        with statements_sent(db) as sent:
            await asyncio.gather(
                *(moves.calling(Lease(job.id, job.lease_token or ""), job) for job in jobs)
            )

        marks = sent.alone("call_started_at")
        assert 1 <= len(marks) <= 2  # the first job's mark, then the eleven queued behind it
        assert all(marks) and sent.commits == 0
        assert await calls_in_flight(db, jobs) == [now] * 12
    finally:
        await db.dispose()


async def test_the_heartbeat_renews_the_leases_its_worker_holds_and_no_other(
    database_url: str,
) -> None:
    db = Database(database_url)
    try:
        mine = await leased_jobs(db, 3, 1_000)
        (theirs,) = await leased_jobs(db, 1, 1_000, owner="w2")

        async with db.transaction() as conn:
            renewed = await claims.renew_owner(conn, "w1", 2_000, LEASE_MS)

        assert renewed == {job.id: job.lease_token for job in mine}
        async with db.read() as conn:
            found = [await job_store.get_job(conn, job.id) for job in [*mine, theirs]]
        assert [job.lease_expires_at if job else None for job in found] == [
            2_000 + LEASE_MS,
            2_000 + LEASE_MS,
            2_000 + LEASE_MS,
            1_000 + LEASE_MS,
        ]
    finally:
        await db.dispose()


async def test_a_heartbeat_reads_only_the_workers_own_leased_jobs_on_postgresql(
    pg_database_url: str,
) -> None:
    """``renew_owner`` finds the worker's jobs through ``ix_jobs_leased``: with thousands of
    finished jobs in the table, a heartbeat never reads it whole (it did, every heartbeat)."""
    _truncate_pg(pg_database_url)
    db = Database(pg_database_url)
    try:
        mine = await leased_jobs(db, 3, 1_000)
        await add_finished_jobs(db, 3_000)
        async with db.transaction() as conn:
            before = await whole_reads_of_jobs(conn)
            renewed = await claims.renew_owner(conn, "w1", 2_000, LEASE_MS)
            scans = await whole_reads_of_jobs(conn) - before
        assert renewed == {job.id: job.lease_token for job in mine}
        assert scans == 0
    finally:
        await db.dispose()


async def test_a_workers_leased_jobs_are_found_through_an_index_on_sqlite(
    migrated_sqlite: Path, tmp_path: Path
) -> None:
    db = Database(fresh_sqlite(migrated_sqlite, tmp_path))
    try:
        await leased_jobs(db, 3, 1_000)
        await add_finished_jobs(db, 300)
        async with db.read() as conn:
            plan = (
                await conn.execute(
                    text(
                        "EXPLAIN QUERY PLAN SELECT id FROM jobs"
                        " WHERE lease_owner = 'w1' AND lease_token IS NOT NULL ORDER BY id"
                    )
                )
            ).all()
        assert any("ix_jobs_leased" in str(row) for row in plan), plan
    finally:
        await db.dispose()


async def add_finished_jobs(db: Database, count: int) -> None:
    account_id = await add_account(db, credits=0)
    for _ in range(count):
        await add_job(db, account_id, status="COMPLETED", step="done")
    async with db.transaction() as conn:
        await conn.execute(text("ANALYZE jobs"))
