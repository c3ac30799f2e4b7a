"""First start: when several processes bootstrap one empty database at once, exactly one
creates the account and its keys; a restart creates nothing."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from imagegate.domain.keys import key_hash
from imagegate.services.bootstrap import DEMO_CREDITS, bootstrap
from imagegate.store import accounts as store
from imagegate.store.db import Database
from imagegate.store.tables import accounts, api_keys
from imagegate.testing.clock import FakeClock

STARTERS = 8


async def test_concurrent_first_starts_create_one_account(database_url: str) -> None:
    clock = FakeClock()
    # One Database (its own connection pool) per starter: as many processes would have.
    databases = [Database(database_url) for _ in range(STARTERS)]
    try:
        runs = await asyncio.gather(*(bootstrap(db, clock) for db in databases))
    finally:
        await asyncio.gather(*(db.dispose() for db in databases))

    created = [run for run in runs if run is not None]
    assert len(created) == 1, f"{len(created)} of {STARTERS} starters created an account"
    (first,) = created
    db = Database(database_url)
    try:
        async with db.read() as conn:
            assert await conn.scalar(select(func.count()).select_from(accounts)) == 1
            assert await conn.scalar(select(func.count()).select_from(api_keys)) == 2
            assert await store.balance(conn, first.account_id) == DEMO_CREDITS == first.credits
            for key in (first.live_key, first.test_key):
                row = await store.find_key(conn, key_hash(key))
                assert row is not None and row.account_id == first.account_id
        assert await bootstrap(db, clock) is None  # a restart
    finally:
        await db.dispose()
