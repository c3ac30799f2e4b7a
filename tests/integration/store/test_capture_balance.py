"""On PostgreSQL a completion's capture records the account's balance after every change of it
in flight has committed (migration 0016; a batch's, 0022): the ledger's last ``balance_after``
is the account's credits, whatever order a refund and a capture of the same account commit in."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import psycopg
import pytest

from imagegate.store.db import Database
from tests.conftest import _psycopg_dsn, _truncate_pg
from tests.factories import add_account, add_job

LEASED = "UPDATE jobs SET status = 'PROCESSING', lease_token = 'token' WHERE id = %s"
COMPLETE = (
    "SELECT id FROM complete_job(%s, 'token', 2000, 4, 9000, NULL, NULL, NULL, NULL, 0, '',"
    " NULL, NULL)"
)
COMPLETE_IN_A_BATCH = (
    "SELECT id FROM complete_jobs(jsonb_build_array(jsonb_build_object('id', %s::text,"
    " 'token', 'token', 'at_ms', 2000, 'charged', 4, 'expires_at', 9000)))"
)
LAST_ENTRY = (
    "SELECT kind, balance_after FROM ledger_entries WHERE account_id = %s ORDER BY id DESC LIMIT 1"
)
CREDITS = "SELECT credits FROM accounts WHERE id = %s"


@pytest.mark.parametrize("statement", [COMPLETE, COMPLETE_IN_A_BATCH], ids=["alone", "batch"])
async def test_a_capture_waits_for_a_refund_in_flight_and_records_the_balance_after_it(
    pg_database_url: str, statement: str
) -> None:
    _truncate_pg(pg_database_url)
    db = Database(pg_database_url)
    try:
        account_id = await add_account(db, credits=100)
        job_id = await add_job(db, account_id, credit_cost=4)
    finally:
        await db.dispose()
    dsn = _psycopg_dsn(pg_database_url)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(LEASED, (job_id,))

    completed: list[Any] = []
    with psycopg.connect(dsn) as refunding:
        # A cancel's refund of the same account, in flight: its ledger row has its id.
        refunding.execute("UPDATE accounts SET credits = credits + 4 WHERE id = %s", (account_id,))
        refunding.execute(
            "INSERT INTO ledger_entries (account_id, job_id, kind, amount, balance_after,"
            " created_at) VALUES (%s, NULL, 'refund', 4, 104, 1500)",
            (account_id,),
        )

        def complete() -> None:
            with psycopg.connect(dsn, autocommit=True) as conn:
                completed.append(conn.execute(statement, (job_id,)).fetchone())

        completing = threading.Thread(target=complete)
        completing.start()
        await asyncio.sleep(0.5)
        waited = completing.is_alive()  # the capture waits for the refund to commit
        refunding.commit()
    completing.join(10)

    assert completed == [(job_id,)]
    assert waited
    with psycopg.connect(dsn) as conn:
        credits = conn.execute(CREDITS, (account_id,)).fetchone()
        last = conn.execute(LAST_ENTRY, (account_id,)).fetchone()
    assert credits == (104,)
    assert last == ("capture", 104)
