from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from imagegate.store.db import Database
from tests.conftest import _truncate_pg
from tests.factories import add_account

# Counts the INSERT statements on a table in a transaction-local setting. Made inside the
# test's transaction, which rolls back: nothing of it outlives the test.
_COUNT_INSERTS = """
CREATE FUNCTION test_count_{table}_inserts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('test.{table}_inserts',
        (coalesce(nullif(current_setting('test.{table}_inserts', true), ''), '0')::int + 1)::text,
        true);
    RETURN NULL;
END
$$;
CREATE TRIGGER test_count_{table}_inserts AFTER INSERT ON {table}
FOR EACH STATEMENT EXECUTE FUNCTION test_count_{table}_inserts();
"""


@pytest.fixture
async def sqlite_db(sqlite_url: str) -> AsyncIterator[Database]:
    """A ``Database`` on a fresh migrated SQLite file, disposed after the test."""
    database = Database(sqlite_url)
    yield database
    await database.dispose()


def submit_item(
    account_id: str,
    *,
    cost: int = 0,
    at: int = 1_000,
    key: str | None = None,
    max_queued: int = 1_000,
) -> dict[str, Any]:
    """One item of PostgreSQL's ``submit_jobs`` argument: a job of ``cost`` credits (a free
    sandbox job by default) submitted at ``at``, with ``key`` as its Idempotency-Key."""
    return {
        "account_id": account_id,
        "id": str(uuid.uuid4()),
        "key": key,
        "credit_cost": cost,
        "created_at": at,
        "api_key_id": None,
        "model": "midjourney",
        "prompt": "a test",
        "input": {},
        "params": {},
        "outputs_expected": 1,
        "sandbox": cost == 0,
        "webhook_url": None,
        "webhook_events": None,
        "retention_days": None,
        "deadline_at": at + 1_000,
        "max_queued": max_queued,
        "day_start": 0,
        "fingerprint": "f",
        "key_expires_at": at + 5_000,
    }


@pytest.fixture
async def account(pg_database_url: str) -> AsyncIterator[str]:
    """An account with 10 credits in an emptied PostgreSQL database."""
    _truncate_pg(pg_database_url)
    db = Database(pg_database_url)
    try:
        yield await add_account(db, credits=10)
    finally:
        await db.dispose()


def count_inserts(conn: psycopg.Connection[Any], table: str) -> None:
    """From now on, within ``conn``'s transaction, count the INSERT statements on ``table``."""
    conn.execute(_COUNT_INSERTS.format(table=table))


def inserts_counted(conn: psycopg.Connection[Any], table: str) -> tuple[Any, ...] | None:
    """The INSERT statements on ``table`` since ``count_inserts``, as the setting's row."""
    return conn.execute(f"SELECT current_setting('test.{table}_inserts', true)").fetchone()
