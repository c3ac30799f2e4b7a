"""Completing a job, on SQLite and PostgreSQL alike: the job COMPLETED with its outputs, the
credits captured pro rata and the rest refunded, the events, the webhook row and the NOTIFY, all
or nothing; and on PostgreSQL, all of it in one statement that commits by itself."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.queue import claims
from imagegate.queue.events import JobSignals
from imagegate.queue.transitions import JobTransitions, Lease, LeaseLost
from imagegate.queue.wakeup import EVENTS_CHANNEL
from imagegate.store import accounts
from imagegate.store import jobs as job_store
from imagegate.store.db import Database
from imagegate.store.jobs import JobRow
from imagegate.store.outputs import OutputRecord
from imagegate.store.tables import job_events
from imagegate.store.webhooks import list_deliveries
from imagegate.testing.clock import FakeClock
from imagegate.types import Route
from tests.conftest import _psycopg_dsn, _truncate_pg, make_settings
from tests.factories import add_account, add_job
from tests.integration.queue.conftest import statements_sent, whole_reads_of_jobs

LEASE_MS = 30_000
HOOK = "http://hooks.test/done"
ROUTE = Route("openai", "gpt-image-1")


def output(n: int) -> OutputRecord:
    return OutputRecord(f"jobs/{n}.png", "image/png", 1_000 + n, 64, 64, f"{n:064x}")


@contextlib.asynccontextmanager
async def transitions(database_url: str, tmp_path: Path) -> AsyncIterator[JobTransitions]:
    db = Database(database_url)
    signals = JobSignals(database_url=database_url)
    try:
        yield JobTransitions(db, FakeClock(), make_settings(database_url, tmp_path), None, signals)
    finally:
        await signals.aclose()
        await db.dispose()


async def claimed(db: Database, job_id: str, now: int, owner: str = "w1") -> Lease:
    async with db.transaction() as conn:
        (job,) = await claims.claim(
            conn, owner=owner, token=str(uuid.uuid4()), now=now, lease_ms=LEASE_MS, limit=1
        )
    assert job.id == job_id and job.lease_token is not None
    return Lease(job.id, job.lease_token)


async def paid_job(db: Database, **overrides: Any) -> JobRow:
    """A job of 4 images that reserved 30 credits of an account left with 70, asking for its
    ``completed`` webhook."""
    account_id = await add_account(db, credits=100)
    values = {
        "credit_cost": 30,
        "outputs_expected": 4,
        "webhook_url": HOOK,
        "webhook_events": ["completed"],
        **overrides,
    }
    job_id = await add_job(db, account_id, **values)
    async with db.transaction() as conn:
        assert await accounts.reserve(conn, account_id, job_id, 30, 1_000)
        job = await job_store.get_job(conn, job_id)
    assert job is not None
    return job


async def written(db: Database, job_id: str) -> dict[str, Any]:
    """What a completion leaves: the job, its ledger rows, events and webhook deliveries."""
    async with db.read() as conn:
        job = await job_store.get_job(conn, job_id)
        assert job is not None
        ledger = await accounts.list_ledger(conn, job.account_id, limit=10)
        events = await conn.execute(
            select(job_events.c.kind, job_events.c.data)
            .where(job_events.c.job_id == job_id)
            .order_by(job_events.c.id)
        )
        deliveries = await list_deliveries(conn, job_id)
    return {
        "job": job,
        "ledger": [(e.kind, e.amount, e.balance_after, e.note) for e in reversed(ledger)],
        "events": [(row.kind, row.data) for row in events],
        "deliveries": [(d.event, d.url, d.status, d.attempts, d.run_at) for d in deliveries],
    }


async def test_a_short_delivery_is_charged_pro_rata_and_its_webhook_queued(
    database_url: str, tmp_path: Path
) -> None:
    async with transitions(database_url, tmp_path) as moves:
        db = moves._db
        job = await paid_job(db)
        lease = await claimed(db, job.id, now=moves._now())
        outputs = [output(n) for n in range(3)]

        finished = await moves.complete(lease, job, 3, stored=(ROUTE, outputs))

        now = moves._now()
        after = await written(db, job.id)
    assert after["job"] == finished
    assert (finished.status, finished.step, finished.progress) == ("COMPLETED", "done", 100)
    assert (finished.provider, finished.upstream_model, finished.outputs) == (
        "openai",
        "gpt-image-1",
        outputs,
    )
    assert finished.credit_cost == 23  # 30 × 3/4, rounded up
    assert (finished.completed_at, finished.updated_at, finished.webhook_status) == (
        now,
        now,
        "pending",
    )
    assert finished.expires_at == now + 30 * 86_400_000
    assert finished.lease_token is finished.lease_owner is finished.lease_expires_at is None
    assert finished.call_started_at is None
    assert after["ledger"] == [
        ("grant", 100, 100, None),
        ("reserve", -30, 70, None),
        ("refund", 7, 77, "delivered 3 of 4 images"),
        ("capture", 0, 77, "charged 23"),
    ]
    assert after["events"] == [("stored", {"outputs": 3}), ("completed", None)]
    assert after["deliveries"] == [("completed", HOOK, "pending", 0, now)]


async def test_a_job_finished_from_its_stored_record_keeps_it_and_is_charged_in_full(
    database_url: str, tmp_path: Path
) -> None:
    """A job found at step ``fetch`` (its outputs recorded before a restart) completes with
    what it recorded; a job that asked for no webhook gets no delivery row."""
    outputs = [output(n) for n in range(4)]
    async with transitions(database_url, tmp_path) as moves:
        db = moves._db
        job = await paid_job(db, webhook_url=None, webhook_events=None)
        lease = await claimed(db, job.id, now=moves._now())
        await moves.fetched(lease, ROUTE, outputs)
        async with db.read() as conn:
            fetched = await job_store.get_job(conn, job.id)
        assert fetched is not None

        finished = await moves.complete(lease, fetched, 4)

        after = await written(db, job.id)
    assert after["job"] == finished
    assert (finished.status, finished.credit_cost, finished.webhook_status) == (
        "COMPLETED",
        30,
        None,
    )
    assert (finished.provider, finished.outputs) == ("openai", outputs)
    assert after["ledger"][2:] == [("capture", 0, 70, "charged 30")]
    assert after["events"] == [("stored", {"outputs": 4}), ("completed", None)]
    assert after["deliveries"] == []


async def test_a_completion_whose_lease_was_lost_writes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    async with transitions(database_url, tmp_path) as moves:
        db = moves._db
        job = await paid_job(db)
        stale = await claimed(db, job.id, now=moves._now(), owner="a")
        newer = await claimed(db, job.id, now=moves._now() + LEASE_MS + 1, owner="b")
        before = await written(db, job.id)

        with pytest.raises(LeaseLost):
            await moves.complete(stale, job, 3, stored=(ROUTE, [output(0)]))

        after = await written(db, job.id)
    assert after == before
    assert after["job"].status == "PROCESSING"
    assert after["job"].lease_token == newer.token


async def test_a_completion_on_postgresql_is_one_statement_that_commits_and_notifies(
    pg_database_url: str, tmp_path: Path
) -> None:
    _truncate_pg(pg_database_url)
    listener = await psycopg.AsyncConnection.connect(_psycopg_dsn(pg_database_url), autocommit=True)
    async with listener, transitions(pg_database_url, tmp_path) as moves:
        await listener.execute(f"LISTEN {EVENTS_CHANNEL}")
        db = moves._db
        job = await paid_job(db)
        lease = await claimed(db, job.id, now=moves._now())

        with statements_sent(db) as sent:
            await moves.complete(lease, job, 3, stored=(ROUTE, [output(n) for n in range(3)]))

        async with asyncio.timeout(5):
            notice = await anext(listener.notifies())
    assert len(sent.statements) == 1, sent.statements
    assert sent.alone("complete_job") == [True]  # no BEGIN, no COMMIT: one round trip
    assert sent.commits == 0
    assert (notice.channel, notice.payload) == (EVENTS_CHANNEL, job.id)


async def full_deliveries(
    db: Database, account_id: str, count: int, now: int, **overrides: Any
) -> list[Lease]:
    """``count`` claimed jobs of ``account_id`` in id order, each reserving 10 credits for one
    image (``overrides``: more columns of each job)."""
    job_ids = [await add_job(db, account_id, credit_cost=10, **overrides) for _ in range(count)]
    async with db.transaction() as conn:
        for job_id in job_ids:
            assert await accounts.reserve(conn, account_id, job_id, 10, 1_000)
        leased = await claims.claim(
            conn, owner="w1", token=str(uuid.uuid4()), now=now, lease_ms=LEASE_MS, limit=count
        )
    assert sorted(job.id for job in leased) == sorted(job_ids)
    return [Lease(job.id, job.lease_token or "") for job in sorted(leased, key=lambda j: j.id)]


async def test_completions_finishing_at_once_commit_together_per_account_on_postgresql(
    pg_database_url: str, tmp_path: Path
) -> None:
    """Full deliveries of one account that finish while a batch of theirs is written go in the
    next batch, one statement committing by itself; another account's never join them."""
    _truncate_pg(pg_database_url)
    async with transitions(pg_database_url, tmp_path) as moves:
        db = moves._db
        accounts_of = [await add_account(db, credits=100) for _ in range(2)]
        leases = {
            account_id: await full_deliveries(db, account_id, 6, moves._now())
            for account_id in accounts_of
        }
        async with db.read() as conn:
            jobs = {
                lease.job_id: await job_store.get_job(conn, lease.job_id)
                for held in leases.values()
                for lease in held
            }
        await db.read_with(lambda conn: job_store.get_job(conn, "none"))  # threads started

        with statements_sent(db) as sent:
            finished = await asyncio.gather(
                *(
                    moves.complete(lease, job, 1, stored=(ROUTE, [output(n)]))
                    for n, (lease, job) in enumerate(
                        (lease, jobs[lease.job_id]) for held in leases.values() for lease in held
                    )
                )
            )

        after = {job_id: await written(db, job_id) for job_id in jobs}
    with psycopg.connect(_psycopg_dsn(pg_database_url)) as conn:
        commits = conn.execute("SELECT account_id, xmin::text FROM jobs").fetchall()
    assert [job.status for job in finished] == ["COMPLETED"] * 12
    assert all(after[job.id]["job"] == job for job in finished)
    assert all(
        written["events"] == [("stored", {"outputs": 1}), ("completed", None)]
        and written["ledger"][-1][:3] == ("capture", 0, 40)
        for written in after.values()
    )
    batches = sent.alone("complete_jobs")
    assert 2 <= len(batches) <= 4 and all(batches) and sent.commits == 0
    # Each commit wrote one account's jobs, and at least one wrote several.
    accounts_by_commit: dict[str, set[str]] = {}
    for account_id, xmin in commits:
        accounts_by_commit.setdefault(xmin, set()).add(account_id)
    assert all(len(owners) == 1 for owners in accounts_by_commit.values())
    assert len(accounts_by_commit) < 12


async def test_completions_finishing_in_one_turn_of_the_event_loop_are_one_statement(
    pg_database_url: str, tmp_path: Path
) -> None:
    """Full deliveries of one account whose vendors answered together (their steps resumed in
    the same turn of the event loop) are written by one statement: the first does not start a
    batch of its own before the others are queued."""
    _truncate_pg(pg_database_url)
    async with transitions(pg_database_url, tmp_path) as moves:
        db = moves._db
        account_id = await add_account(db, credits=100)
        leases = await full_deliveries(db, account_id, 5, moves._now())
        async with db.read() as conn:
            jobs = [await job_store.get_job(conn, lease.job_id) for lease in leases]
        await db.read_with(lambda conn: job_store.get_job(conn, "none"))  # threads started

        with statements_sent(db) as sent:
            finished = await asyncio.gather(
                *(
                    moves.complete(lease, job, 1, stored=(ROUTE, [output(n)]))
                    for n, (lease, job) in enumerate(zip(leases, jobs, strict=True))
                    if job is not None
                )
            )

    assert [job.status for job in finished] == ["COMPLETED"] * 5
    assert sent.alone("complete_jobs") == [True]


async def test_a_lost_lease_in_a_batch_of_completions_writes_nothing_for_that_job_alone(
    pg_database_url: str, tmp_path: Path
) -> None:
    _truncate_pg(pg_database_url)
    async with transitions(pg_database_url, tmp_path) as moves:
        db = moves._db
        account_id = await add_account(db, credits=100)
        leases = await full_deliveries(db, account_id, 3, moves._now())
        leases[1] = Lease(leases[1].job_id, "a lease taken over by another worker")
        async with db.read() as conn:
            jobs = [await job_store.get_job(conn, lease.job_id) for lease in leases]
        before = await written(db, leases[1].job_id)

        outcomes = await asyncio.gather(
            *(
                moves.complete(lease, job, 1, stored=(ROUTE, [output(0)]))
                for lease, job in zip(leases, jobs, strict=True)
                if job is not None
            ),
            return_exceptions=True,
        )

        after = [await written(db, lease.job_id) for lease in leases]
    assert [type(outcome) for outcome in outcomes] == [JobRow, LeaseLost, JobRow]
    assert [written["job"].status for written in after] == ["COMPLETED", "PROCESSING", "COMPLETED"]
    assert {**after[1], "ledger": None} == {**before, "ledger": None}
    # The account's ledger: the two others' captures after the reservations, none for it.
    assert after[1]["ledger"] == before["ledger"] + [("capture", 0, 70, "charged 10")] * 2


async def test_a_batch_of_completions_refuses_a_refund_and_writes_nothing(
    pg_database_url: str, tmp_path: Path
) -> None:
    """A refund locks the account exclusively, out of the batch's lock order: it is written by
    ``complete_job`` alone, never dropped by ``complete_jobs``."""
    _truncate_pg(pg_database_url)
    async with transitions(pg_database_url, tmp_path) as moves:
        db = moves._db
        account_id = await add_account(db, credits=100)
        [lease] = await full_deliveries(db, account_id, 1, moves._now())
        before = await written(db, lease.job_id)
        refunding = claims.Completion(
            job_id=lease.job_id,
            token=lease.token,
            now=moves._now(),
            charged=7,
            expires_at=moves._now() + LEASE_MS,
            webhook_status=None,
            stored=None,
            delivery_id=None,
            channel=None,
            refund=3,
            refund_note="delivered 1 of 2 images",
        )

        with pytest.raises(ValueError, match="no refund"):
            await db.write(lambda conn: claims.complete_jobs(conn, [refunding]))

        assert await written(db, lease.job_id) == before


def completion(
    lease: Lease,
    now: int,
    *,
    charged: int,
    stored: list[OutputRecord] | None,
    hook: str | None,
    lost: bool = False,
) -> claims.Completion:
    """A full delivery's completion; ``hook`` names its webhook delivery (and asks for the
    NOTIFY), ``lost``: its lease was taken over."""
    return claims.Completion(
        job_id=lease.job_id,
        token="a lease taken over by another worker" if lost else lease.token,
        now=now,
        charged=charged,
        expires_at=now + LEASE_MS,
        webhook_status="pending" if hook else None,
        stored=(ROUTE, stored) if stored is not None else None,
        delivery_id=f"{hook}-{lease.job_id[-30:]}" if hook else None,
        channel=EVENTS_CHANNEL if hook else None,
    )


def comparable(job: JobRow | None) -> dict[str, Any] | None:
    """A job as written, without what tells two accounts' jobs apart."""
    if job is None:
        return None
    return {k: v for k, v in dataclasses.asdict(job).items() if k not in ("id", "account_id")}


def left_by(database_url: str, account_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """The completions' rows of ``account_id``'s jobs, in the order of their ids (deliveries:
    of their jobs), each naming its job by its place among the account's jobs in id order."""
    place = "(SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM jobs WHERE account_id = %s)"
    with psycopg.connect(_psycopg_dsn(database_url)) as conn:
        rows = {
            "events": f"SELECT j.n, e.kind, e.data, e.at FROM job_events AS e JOIN {place} AS j"
            " ON j.id = e.job_id WHERE e.kind IN ('stored', 'completed') ORDER BY e.id",
            "ledger": "SELECT j.n, l.kind, l.amount, l.balance_after, l.note, l.created_at"
            f" FROM ledger_entries AS l JOIN {place} AS j ON j.id = l.job_id"
            " WHERE l.kind = 'capture' ORDER BY l.id",
            "deliveries": "SELECT j.n, d.id LIKE 'd' || j.n || '-%%', d.event, d.url, d.status,"
            f" d.attempts, d.run_at, d.created_at FROM webhook_deliveries AS d JOIN {place} AS j"
            " ON j.id = d.job_id ORDER BY j.n",
        }
        return {
            name: [tuple(row) for row in conn.execute(sql, (account_id,)).fetchall()]
            for name, sql in rows.items()
        }


async def test_a_batch_of_completions_writes_what_each_completion_alone_would_in_its_order(
    pg_database_url: str,
) -> None:
    """``complete_jobs`` writes, for each job of its batch, the rows ``complete_job`` writes for
    it alone, in the same order of ids: the job, its ``stored`` and ``completed`` events, the
    capture's ledger row, the webhook row and the NOTIFY; nothing for a job whose lease is lost,
    and no ledger row for a capture of nothing. Two accounts get the same jobs and completions,
    one's in a batch, the other's one statement each."""
    _truncate_pg(pg_database_url)
    db = Database(pg_database_url)
    listener = await psycopg.AsyncConnection.connect(_psycopg_dsn(pg_database_url), autocommit=True)
    async with listener:
        await listener.execute(f"LISTEN {EVENTS_CHANNEL}")
        try:
            batched, alone = await add_account(db, credits=100), await add_account(db, credits=100)
            leases = {
                account_id: await full_deliveries(
                    db, account_id, 4, 2_000, webhook_url=HOOK, webhook_events=["completed"]
                )
                for account_id in (batched, alone)
            }
            completions = {
                account_id: [
                    completion(held[0], 3_000, charged=10, stored=[output(0)], hook="d0"),
                    completion(held[1], 3_001, charged=0, stored=None, hook=None),
                    completion(
                        held[2], 3_002, charged=10, stored=[output(1)], hook="d2", lost=True
                    ),
                    completion(held[3], 3_003, charged=7, stored=[output(2), output(3)], hook="d3"),
                ]
                for account_id, held in leases.items()
            }

            together = await db.write(lambda conn: claims.complete_jobs(conn, completions[batched]))
            each = [
                await db.write(functools.partial(claims.complete_job, completion=one))
                for one in completions[alone]
            ]

            async with asyncio.timeout(5):
                notified = [note.payload async for note in listener.notifies(stop_after=4)]
        finally:
            await db.dispose()
    left = {account_id: left_by(pg_database_url, account_id) for account_id in (batched, alone)}

    assert [job is None for job in together] == [False, False, True, False]
    assert [comparable(job) for job in together] == [comparable(job) for job in each]
    assert left[batched] == left[alone]
    assert left[batched] == {
        "events": [
            (0, "stored", {"outputs": 1}, 3_000),
            (0, "completed", None, 3_000),
            (1, "completed", None, 3_001),
            (3, "stored", {"outputs": 2}, 3_003),
            (3, "completed", None, 3_003),
        ],
        "ledger": [
            (0, "capture", 0, 60, "charged 10", 3_000),
            (3, "capture", 0, 60, "charged 7", 3_003),
        ],
        "deliveries": [
            (0, True, "completed", HOOK, "pending", 0, 3_000, 3_000),
            (3, True, "completed", HOOK, "pending", 0, 3_003, 3_003),
        ],
    }
    place = {
        lease.job_id: (n, owner) for owner, held in leases.items() for n, lease in enumerate(held)
    }
    assert [place[job_id] for job_id in notified] == [
        (0, batched),
        (3, batched),
        (0, alone),
        (3, alone),
    ]


async def test_a_batch_of_completions_reads_only_its_own_jobs_among_thousands_on_postgresql(
    pg_database_url: str,
) -> None:
    """``complete_jobs`` locks and updates its batch's jobs through their keys: with thousands
    of finished jobs beside them, it never reads the whole table (a batch's rows are 100 to the
    planner, who then chose to read every job twice per batch)."""
    _truncate_pg(pg_database_url)
    db = Database(pg_database_url)
    try:
        account_id = await add_account(db, credits=100)
        leases = await full_deliveries(db, account_id, 3, 2_000)
        with psycopg.connect(_psycopg_dsn(pg_database_url), autocommit=True) as conn:
            conn.execute(
                "INSERT INTO jobs SELECT (jsonb_populate_record(j, jsonb_build_object("
                "'id', gen_random_uuid()::text, 'status', 'COMPLETED', 'step', 'done',"
                "'lease_owner', NULL, 'lease_token', NULL, 'lease_expires_at', NULL))).*"
                " FROM jobs AS j, generate_series(1, 3000) WHERE j.id = %s",
                (leases[0].job_id,),
            )
            conn.execute("ANALYZE jobs")
        batch = [
            completion(lease, 3_000, charged=10, stored=[output(n)], hook=None)
            for n, lease in enumerate(leases)
        ]

        async def complete_and_count(conn: AsyncConnection) -> tuple[list[JobRow | None], int]:
            before = await whole_reads_of_jobs(conn)
            finished = await claims.complete_jobs(conn, batch)
            return finished, await whole_reads_of_jobs(conn) - before

        async with db.transaction() as conn:
            finished, whole_reads = await complete_and_count(conn)
    finally:
        await db.dispose()

    assert [job.status if job else None for job in finished] == ["COMPLETED"] * 3
    assert whole_reads == 0
