"""On PostgreSQL a batch of submits (``submit_jobs``) adds the jobs it admits to its session's
counter row once per account, not once per job through the insert trigger (migration 0015):
the counts stay exact through refusals and accounts changing mid-batch, and an insert later in
the same transaction is counted by the trigger again."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from imagegate.store.db import Database
from tests.conftest import _psycopg_dsn, _truncate_pg
from tests.factories import add_account
from tests.integration.store.conftest import submit_item

SUMS = (
    "SELECT account_id, sum(queued)::int FROM account_job_count_slots GROUP BY account_id"
    " HAVING sum(queued) <> 0"
)
QUEUED = "SELECT account_id, count(*)::int FROM jobs WHERE status = 'QUEUED' GROUP BY account_id"
COUNTER_ROW_WRITES = (
    "SELECT pg_stat_get_xact_tuples_inserted('account_job_count_slots'::regclass)"
    " + pg_stat_get_xact_tuples_updated('account_job_count_slots'::regclass)"
)


@pytest.fixture
async def accounts(pg_database_url: str) -> AsyncIterator[tuple[str, str]]:
    _truncate_pg(pg_database_url)
    db = Database(pg_database_url)
    try:
        yield await add_account(db), await add_account(db)
    finally:
        await db.dispose()


def submit_jobs(conn: psycopg.Connection[Any], submits: list[dict[str, Any]]) -> list[str]:
    query = "SELECT outcome FROM submit_jobs(%s::jsonb) ORDER BY item"
    return [row[0] for row in conn.execute(query, (json.dumps(submits),))]


def counted(conn: psycopg.Connection[Any]) -> dict[str, int]:
    return dict(conn.execute(SUMS).fetchall())


def queued(conn: psycopg.Connection[Any]) -> dict[str, int]:
    return dict(conn.execute(QUEUED).fetchall())


async def test_a_batch_writes_its_counter_row_once_per_account(
    pg_database_url: str, accounts: tuple[str, str]
) -> None:
    first, _ = accounts
    with psycopg.connect(_psycopg_dsn(pg_database_url)) as conn:
        outcomes = submit_jobs(conn, [submit_item(first) for _ in range(10)])

        assert outcomes == ["accepted"] * 10
        # One upsert for the ten jobs, where the insert trigger wrote the row once per job.
        assert conn.execute(COUNTER_ROW_WRITES).fetchone() == (1,)
        conn.commit()
        assert counted(conn) == queued(conn) == {first: 10}


async def test_counts_stay_exact_through_refusals_and_accounts_mid_batch(
    pg_database_url: str, accounts: tuple[str, str]
) -> None:
    first, second = accounts
    batch = [
        submit_item(first, max_queued=2),
        submit_item(second),
        submit_item(first, max_queued=2),
        submit_item(first, max_queued=2),  # the account's third: refused, its lock given back
        submit_item(first, max_queued=3),  # counted again, with the two admitted before it
        submit_item(second),
        submit_item(first, max_queued=3),
    ]
    with psycopg.connect(_psycopg_dsn(pg_database_url)) as conn:
        outcomes = submit_jobs(conn, batch)
        conn.commit()

        assert outcomes == [
            "accepted",
            "accepted",
            "accepted",
            "queued_cap",
            "accepted",
            "accepted",
            "queued_cap",
        ]
        assert counted(conn) == queued(conn) == {first: 3, second: 2}


async def test_an_insert_after_a_batch_in_its_transaction_is_counted(
    pg_database_url: str, accounts: tuple[str, str]
) -> None:
    first, second = accounts
    with psycopg.connect(_psycopg_dsn(pg_database_url)) as conn:
        assert submit_jobs(conn, [submit_item(first)]) == ["accepted"]
        assert conn.execute(
            "SELECT current_setting('imagegate.counted_by_batch', true)"
        ).fetchone() in {("",), (None,)}
        conn.execute(
            "INSERT INTO jobs (id, account_id, model, status, step, progress, prompt, input,"
            " params, outputs_expected, sandbox, credit_cost, run_at, created_at, updated_at,"
            " deadline_at) SELECT %s, %s, 'midjourney', 'QUEUED', 'submit', 0, 'p', '{}',"
            " '{}', 1, true, 0, 1, 1, 1, 2",
            (str(uuid.uuid4()), second),
        )
        conn.commit()
        assert counted(conn) == queued(conn) == {first: 1, second: 1}
