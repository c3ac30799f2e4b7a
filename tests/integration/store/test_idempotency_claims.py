"""``claim_idempotency``: a submit's Idempotency-Key recorded in one statement when it is free,
with what looking the key up, dropping an expired record and inserting did: a live record is
found and left as it was, an expired one is replaced, and a body that fails after claiming
leaves no key behind."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.store import jobs as job_store
from imagegate.store.db import Database
from imagegate.store.jobs import IdempotencyRecord
from imagegate.store.tables import idempotency_keys
from tests.conftest import _psycopg_dsn, _truncate_pg
from tests.factories import add_account


class Refused(Exception):
    pass


def claim(account_id: str, fingerprint: str, job_id: str, now: int, *, fail: bool = False) -> Any:
    async def body(conn: AsyncConnection) -> IdempotencyRecord | None:
        found = await job_store.claim_idempotency(
            conn, account_id=account_id, key="k", fingerprint=fingerprint, job_id=job_id,
            now=now, expires_at=now + 1_000,
        )  # fmt: skip
        if fail:
            raise Refused()
        return found

    return body


async def records(db: Database) -> list[tuple[Any, ...]]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(
                idempotency_keys.c.fingerprint,
                idempotency_keys.c.job_id,
                idempotency_keys.c.created_at,
                idempotency_keys.c.expires_at,
            )
        )
        return [tuple(row) for row in rows]


async def test_a_free_key_is_recorded_and_a_live_one_is_found_unchanged(db: Database) -> None:
    account_id = await add_account(db)
    assert await db.write(claim(account_id, "f", "job-1", 1_000)) is None
    assert await records(db) == [("f", "job-1", 1_000, 2_000)]

    found = await db.write(claim(account_id, "g", "job-2", 1_999))

    assert found == IdempotencyRecord("f", "job-1")
    assert await records(db) == [("f", "job-1", 1_000, 2_000)]


async def test_an_expired_key_is_claimed_afresh(db: Database) -> None:
    account_id = await add_account(db)
    await db.write(claim(account_id, "f", "job-1", 1_000))

    assert await db.write(claim(account_id, "g", "job-2", 2_000)) is None
    assert await records(db) == [("g", "job-2", 2_000, 3_000)]


async def test_keys_of_other_accounts_are_apart(db: Database) -> None:
    first, second = await add_account(db), await add_account(db)
    await db.write(claim(first, "f", "job-1", 1_000))

    assert await db.write(claim(second, "g", "job-2", 1_000)) is None
    assert sorted(await records(db)) == [("f", "job-1", 1_000, 2_000), ("g", "job-2", 1_000, 2_000)]


async def test_a_body_refused_after_its_claim_leaves_no_key(db: Database) -> None:
    account_id = await add_account(db)
    with pytest.raises(Refused):
        await db.write(claim(account_id, "f", "job-1", 1_000, fail=True))
    assert await records(db) == []

    assert await db.write(claim(account_id, "g", "job-2", 1_000)) is None
    assert await records(db) == [("g", "job-2", 1_000, 2_000)]


async def test_on_postgresql_a_key_record_leaves_the_account_check_to_its_job(
    pg_database_url: str,
) -> None:
    """Migration 0021: the record's insert checks no account (the job inserted with it does)."""
    _truncate_pg(pg_database_url)
    with psycopg.connect(_psycopg_dsn(pg_database_url)) as conn:
        conn.execute(
            "INSERT INTO idempotency_keys"
            " (account_id, key, fingerprint, job_id, created_at, expires_at)"
            " VALUES (%s, 'k', 'f', %s, 1000, 2000)",
            (str(uuid.uuid4()), str(uuid.uuid4())),
        )
        conn.rollback()
