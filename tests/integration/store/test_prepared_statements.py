"""On SQLite, the hot paths' statements run below SQLAlchemy (``imagegate.store.prepared``) and
write and read exactly what SQLAlchemy's execution writes and reads: the same stored values
(JSON, booleans, NULLs), the same rows, the same errors."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest
import sqlalchemy.exc
import uuid_utils
from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.queue import claims
from imagegate.store import accounts
from imagegate.store import jobs as job_store
from imagegate.store.db import Database
from imagegate.store.jobs import JobRow, NewJob
from imagegate.store.outputs import OutputRecord
from imagegate.store.tables import idempotency_keys, job_events, jobs, ledger_entries
from tests.factories import add_account


def new_job(account_id: str, **changes: Any) -> NewJob:
    job = NewJob(
        id=str(uuid_utils.uuid7()),
        account_id=account_id,
        api_key_id=None,
        model="gpt-image-1.5",
        prompt='a kite ✈ "quoted"',
        input={"model": "gpt-image-1.5", "prompt": "a kite", "n": 2, "x": [1.5, None, True]},
        params={"quality": "low"},
        outputs_expected=2,
        sandbox=True,
        credit_cost=7,
        webhook_url="https://example.test/hook",
        webhook_events=["completed", "failed"],
        retention_days=None,
        created_at=1_000,
        deadline_at=9_000,
    )
    return dataclasses.replace(job, **changes)


async def stored(db: Database, table: Any, column: Any, value: str) -> list[tuple[Any, ...]]:
    """The raw stored values (no type processing), without the key column."""
    async with db.read() as conn:
        names = ", ".join(f'"{c.name}"' for c in table.c if c.name not in ("id",))
        rows = await conn.execute(
            text(f"SELECT {names} FROM {table.name} WHERE {column.name} = :v"), {"v": value}
        )
        return [tuple(row) for row in rows]


@pytest.mark.parametrize("sandbox", [True, False])
async def test_a_job_and_its_event_are_stored_as_sqlalchemy_stores_them(
    sqlite_db: Database, sandbox: bool
) -> None:
    account_id = await add_account(sqlite_db, credits=100)
    direct = new_job(account_id, sandbox=sandbox)
    routed = dataclasses.replace(direct, id=str(uuid_utils.uuid7()))

    async def body(conn: AsyncConnection) -> int | None:
        await job_store.insert_job(conn, direct)
        await job_store.add_event(conn, direct.id, "queued", 1_000, {"cost": 7})
        return await accounts.reserve(conn, account_id, direct.id, 7, 1_000)

    assert await sqlite_db.write(body) == 93  # below SQLAlchemy
    async with sqlite_db.transaction() as conn:  # through SQLAlchemy
        await job_store.insert_job(conn, routed)
        await job_store.add_event(conn, routed.id, "queued", 1_000, {"cost": 7})
        assert await accounts.reserve(conn, account_id, routed.id, 7, 1_000) == 86

    def without_job_id(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return [tuple(v for v in row if v not in (direct.id, routed.id)) for row in rows]

    assert await stored(sqlite_db, jobs, jobs.c.id, direct.id) == await stored(
        sqlite_db, jobs, jobs.c.id, routed.id
    )
    assert without_job_id(await stored(sqlite_db, job_events, job_events.c.job_id, direct.id)) == (
        without_job_id(await stored(sqlite_db, job_events, job_events.c.job_id, routed.id))
    )
    ledger = await stored(sqlite_db, ledger_entries, ledger_entries.c.job_id, direct.id)
    assert [row[2:4] for row in ledger] == [("reserve", -7)]

    async def read(conn: AsyncConnection) -> Any:
        return await job_store.get_job(conn, direct.id, account_id)

    below = await sqlite_db.read_with(read)  # below SQLAlchemy
    async with sqlite_db.read() as conn:  # through SQLAlchemy
        above = await job_store.get_job(conn, direct.id, account_id)
    assert below == above
    assert below is not None and below.input == direct.input and below.sandbox is sandbox


async def test_json_values_are_stored_as_the_text_json_dumps_makes(sqlite_db: Database) -> None:
    """SQLite keeps JSON as text, which other tools read and compare as it is: the encoder the
    engines are given (made once) writes exactly what ``json.dumps`` writes."""
    account_id = await add_account(sqlite_db, credits=0)
    awkward = {
        "prompt": 'a kite ✈ "quoted" \\ \u2028 \ud83d\ude00 \t',
        "n": 2**62,
        "x": [1.5, 1e300, -0.0, 0.1, None, True, False],
        "nested": {"z": [], "a": {}, "": ""},
    }
    job = new_job(account_id, input=awkward, params={"quality": "low", "ratio": 0.25})
    data = {"cost": 0, "note": "é"}

    async def body(conn: AsyncConnection) -> None:
        await job_store.insert_job(conn, job)
        await job_store.add_event(conn, job.id, "queued", 1_000, data)

    await sqlite_db.write(body)
    async with sqlite_db.read() as conn:
        row = (
            await conn.execute(
                text("SELECT input, params, webhook_events, action FROM jobs WHERE id = :id"),
                {"id": job.id},
            )
        ).one()
        event_data = await conn.scalar(
            text("SELECT data FROM job_events WHERE job_id = :id"), {"id": job.id}
        )
    assert tuple(row) == tuple(
        json.dumps(value) for value in (awkward, job.params, job.webhook_events, job.action)
    )
    assert event_data == json.dumps(data)


async def test_counts_accounts_and_short_balances_read_as_through_sqlalchemy(
    sqlite_db: Database,
) -> None:
    account_id = await add_account(sqlite_db, credits=5)

    async def body(conn: AsyncConnection) -> tuple[Any, ...]:
        await job_store.insert_job(conn, new_job(account_id))
        return (
            await accounts.lock_for_admission(conn, account_id),
            await accounts.reserve(conn, account_id, "nope", 7, 1_000),
            await job_store.find_idempotency(conn, account_id, "k", 1_000),
        )

    admission, short, missing = await sqlite_db.write(body)
    async with sqlite_db.transaction() as conn:
        assert admission == await accounts.lock_for_admission(conn, account_id)
    assert admission[1] == accounts.UnfinishedJobs(queued=1, processing=0)
    assert (short, missing) == (None, None)


async def test_a_live_duplicate_idempotency_key_is_sqlalchemys_integrity_error(
    sqlite_db: Database,
) -> None:
    account_id = await add_account(sqlite_db)
    job = new_job(account_id)

    async def record(conn: AsyncConnection) -> Any:
        await job_store.insert_job(conn, job)
        await job_store.insert_idempotency(
            conn, account_id=account_id, key="k", fingerprint="f", job_id=job.id, now=1_000,
            expires_at=5_000,
        )  # fmt: skip
        return await job_store.find_idempotency(conn, account_id, "k", 2_000)

    found = await sqlite_db.write(record)
    assert (found.fingerprint, found.job_id) == ("f", job.id)

    async def again(conn: AsyncConnection) -> None:
        await job_store.insert_idempotency(
            conn, account_id=account_id, key="k", fingerprint="g", job_id=job.id, now=2_000,
            expires_at=6_000,
        )  # fmt: skip

    with pytest.raises(sqlalchemy.exc.IntegrityError):
        await sqlite_db.write(again)
    async with sqlite_db.read() as conn:  # the failed body left nothing behind
        prints = await conn.scalars(select(idempotency_keys.c.fingerprint))
        assert prints.all() == ["f"]


async def test_a_direct_claim_and_its_completion_are_stored_as_sqlalchemy_stores_them(
    sqlite_db: Database,
) -> None:
    account_id = await add_account(sqlite_db, credits=100)
    direct = new_job(account_id, sandbox=False)
    routed = dataclasses.replace(direct, id=str(uuid_utils.uuid7()))
    output = OutputRecord("outputs/x/1.png", "image/png", 12, 8, 8, "ab" * 32)
    completed = {
        "outputs": [output],
        "provider": "openai",
        "status": "COMPLETED",
        "step": "done",
        "progress": 100,
        "completed_at": 3_000,
        "webhook_status": None,
        "updated_at": 3_000,
    }

    async def claim_and_complete(
        conn: AsyncConnection, job: NewJob
    ) -> tuple[JobRow | None, bool, JobRow | None, int]:
        claimed = await claims.insert_claimed_job(
            conn, job, owner="o", token="t", now=2_000, lease_ms=60_000, calling=True
        )
        stale = await claims.fenced_update(conn, job.id, "not-the-token", {"progress": 5})
        finished = await claims.release_job(conn, job.id, "t", completed)
        return claimed, stale, finished, await accounts.balance(conn, account_id)

    async def below(conn: AsyncConnection) -> Any:
        return await claim_and_complete(conn, direct)

    claimed, stale, finished, balance = await sqlite_db.write(below)  # below SQLAlchemy
    async with sqlite_db.transaction() as conn:  # through SQLAlchemy
        through = await claim_and_complete(conn, routed)

    def same_id(row: JobRow | None) -> JobRow | None:
        return None if row is None else dataclasses.replace(row, id=direct.id)

    assert (same_id(through[0]), through[1], same_id(through[2]), through[3]) == (
        claimed,
        stale,
        finished,
        balance,
    )
    assert claimed is not None and claimed.status == "PROCESSING"
    assert claimed.lease_token == "t" and claimed.call_started_at == 2_000
    assert stale is False and balance == 100
    assert finished is not None and finished.outputs == [output]
    assert finished.lease_token is None and finished.call_started_at is None
    assert await stored(sqlite_db, jobs, jobs.c.id, direct.id) == await stored(
        sqlite_db, jobs, jobs.c.id, routed.id
    )


async def test_a_keyed_submit_and_a_job_read_run_nothing_through_sqlalchemy(
    sqlite_db: Database,
) -> None:
    """Every statement of the writer's and the reader's trips, transaction control included,
    runs straight on ``sqlite3``: none reaches SQLAlchemy's cursor execution."""
    account_id = await add_account(sqlite_db)
    job = new_job(account_id)
    await sqlite_db.read_with(lambda conn: accounts.get_account(conn, account_id))  # connected
    executed: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        executed.append(statement)

    async def submit(conn: AsyncConnection) -> Any:
        claimed = await job_store.claim_idempotency(
            conn, account_id=account_id, key="k", fingerprint="f", job_id=job.id, now=1_000,
            expires_at=5_000,
        )  # fmt: skip
        await job_store.insert_job(conn, job)
        await job_store.add_event(conn, job.id, "queued", 1_000, {"cost": 0})
        return claimed, await accounts.lock_for_admission(conn, account_id)

    event.listen(Engine, "before_cursor_execute", on_execute)
    try:
        claimed, (account, unfinished) = await sqlite_db.write(submit)
        mine, theirs = await asyncio.gather(
            sqlite_db.read_each(job_store.get_own_jobs, (job.id, account_id)),
            sqlite_db.read_each(job_store.get_own_jobs, (job.id, "another-account")),
        )
    finally:
        event.remove(Engine, "before_cursor_execute", on_execute)

    assert executed == []
    assert claimed is None and account.id == account_id
    assert unfinished == accounts.UnfinishedJobs(queued=1, processing=0)
    assert mine is not None and mine.id == job.id and theirs is None
