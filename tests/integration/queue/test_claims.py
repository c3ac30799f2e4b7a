"""The queue's conformance suite, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import uuid

from imagegate.queue import claims
from imagegate.store import jobs as job_store
from imagegate.store.db import Database
from imagegate.types import JobStatus, JobStep
from tests.factories import add_account, add_job

LEASE_MS = 30_000


async def claim(
    db: Database, now: int, limit: int = 10, owner: str = "w1"
) -> list[job_store.JobRow]:
    async with db.transaction() as conn:
        return await claims.claim(
            conn, owner=owner, token=str(uuid.uuid4()), now=now, lease_ms=LEASE_MS, limit=limit
        )


async def test_claim_takes_due_jobs_oldest_first_and_marks_them_processing(db: Database) -> None:
    account = await add_account(db)
    late = await add_job(db, account, run_at=3_000)
    early = await add_job(db, account, run_at=2_000)
    future = await add_job(db, account, run_at=9_000)

    claimed = await claim(db, now=5_000)

    assert [job.id for job in claimed] in ([early, late], [late, early])
    assert {job.id for job in claimed} == {early, late}
    assert all(job.status == JobStatus.PROCESSING.value for job in claimed)
    assert all(job.lease_expires_at == 5_000 + LEASE_MS for job in claimed)
    assert future not in {job.id for job in claimed}


async def test_a_leased_job_is_not_claimed_again_until_its_lease_expires(db: Database) -> None:
    account = await add_account(db)
    job_id = await add_job(db, account)
    first = await claim(db, now=2_000, owner="a")
    assert [job.id for job in first] == [job_id]

    assert await claim(db, now=2_000 + LEASE_MS - 1, owner="b") == []
    second = await claim(db, now=2_000 + LEASE_MS + 1, owner="b")

    assert [job.id for job in second] == [job_id]
    assert second[0].lease_token != first[0].lease_token


async def test_concurrent_claimers_never_get_the_same_job(db: Database) -> None:
    account = await add_account(db)
    job_ids = {await add_job(db, account) for _ in range(30)}

    results = await asyncio.gather(
        *(claim(db, now=5_000, limit=4, owner=f"w{i}") for i in range(12))
    )

    claimed = [job.id for batch in results for job in batch]
    assert len(claimed) == len(set(claimed)), "a job was claimed twice"
    assert set(claimed) == job_ids


async def test_lease_expiry_and_fencing_reject_the_stale_worker(db: Database) -> None:
    """Lease A expires, B claims and finishes the job, A's late write is rejected."""
    account = await add_account(db)
    job_id = await add_job(db, account)
    (a,) = await claim(db, now=1_000, owner="a")
    (b,) = await claim(db, now=1_000 + LEASE_MS + 1, owner="b")
    assert a.lease_token is not None and b.lease_token is not None

    async with db.transaction() as conn:
        assert await claims.release(
            conn,
            job_id,
            b.lease_token,
            {"status": JobStatus.COMPLETED.value, "step": JobStep.DONE.value},
        )
    async with db.transaction() as conn:
        late_write = await claims.fenced_update(
            conn, job_id, a.lease_token, {"status": JobStatus.FAILED.value, "error": "stale"}
        )
        renewed = await claims.renew(conn, job_id, a.lease_token, 99_000, LEASE_MS)

    assert late_write is False
    assert renewed is False
    async with db.read() as conn:
        job = await job_store.get_job(conn, job_id)
    assert job is not None
    assert job.status == JobStatus.COMPLETED.value
    assert job.error is None


async def test_released_job_becomes_due_at_its_run_at(db: Database) -> None:
    account = await add_account(db)
    job_id = await add_job(db, account)
    (job,) = await claim(db, now=1_000)
    assert job.lease_token is not None
    async with db.transaction() as conn:
        assert await claims.release(conn, job_id, job.lease_token, {"run_at": 10_000})

    assert await claim(db, now=9_999) == []
    assert [j.id for j in await claim(db, now=10_000)] == [job_id]


async def test_renew_extends_a_held_lease(db: Database) -> None:
    account = await add_account(db)
    await add_job(db, account)
    (job,) = await claim(db, now=1_000, owner="a")
    assert job.lease_token is not None
    async with db.transaction() as conn:
        assert await claims.renew(conn, job.id, job.lease_token, 20_000, LEASE_MS)

    assert await claim(db, now=1_000 + LEASE_MS + 1, owner="b") == []


async def test_finished_jobs_are_never_claimed(db: Database) -> None:
    account = await add_account(db)
    await add_job(db, account, status=JobStatus.COMPLETED.value, step=JobStep.DONE.value)
    await add_job(db, account, status=JobStatus.CANCELLED.value, step=JobStep.DONE.value)

    assert await claim(db, now=10_000) == []


async def test_cancel_beats_claim(db: Database) -> None:
    """A job cancelled while leased: the holder's fenced writes fail from then on."""
    account = await add_account(db)
    job_id = await add_job(db, account)
    (job,) = await claim(db, now=1_000)
    assert job.lease_token is not None
    async with db.transaction() as conn:
        assert await job_store.mark_cancelled(conn, job, JobStep.DONE, 1_500)
        assert not await claims.fenced_update(conn, job_id, job.lease_token, {"progress": 50})

    assert await claim(db, now=100_000) == []


async def test_release_owner_frees_every_lease_of_a_stopping_worker(db: Database) -> None:
    account = await add_account(db)
    for _ in range(3):
        await add_job(db, account)
    await claim(db, now=1_000, owner="leaving")
    async with db.transaction() as conn:
        released = await claims.release_owner(conn, "leaving")

    assert released == 3
    assert len(await claim(db, now=1_001, owner="other")) == 3


async def test_next_due_and_queue_depth(db: Database) -> None:
    account = await add_account(db)
    await add_job(db, account, run_at=5_000)
    await add_job(db, account, run_at=7_000, step=JobStep.POLL.value)
    async with db.read() as conn:
        assert await claims.next_due(conn) == 5_000
        assert await claims.queue_depth(conn, 6_000) == {"submit": 1}
