"""On PostgreSQL an account row's old versions are pruned soon after each change (migration
0017), not once its page is nearly full: every foreign key check of a job, ledger row or webhook
delivery walks the row's chain of versions, so the chain stays a few versions long."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from imagegate.store import accounts
from imagegate.store.db import Database
from imagegate.store.migrate import upgrade_sync
from tests.conftest import _psycopg_dsn, own_pg_database
from tests.factories import add_account

CHANGES = 40
"""Fewer than the versions of an account row that fit in a page (about 70) before PostgreSQL
prunes a page at its default fill factor, so without 0017 none are pruned."""


@pytest.fixture
def quiet_pg_url(pg_server_url: str) -> Iterator[str]:
    """A migrated PostgreSQL database of this test's own. Dead versions are pruned only once no
    session of their database may still see them: in the session's shared database, an
    automatic ANALYZE of a table other tests filled holds a snapshot that long."""
    with own_pg_database(pg_server_url, "imagegate_versions") as url:
        upgrade_sync(url)
        yield url


async def test_an_account_changed_many_times_keeps_few_versions_of_its_row(
    quiet_pg_url: str,
) -> None:
    db = Database(quiet_pg_url)
    try:
        account_id = await add_account(db, credits=100)
        for n in range(CHANGES):
            async with db.transaction() as conn:
                await accounts.grant(conn, account_id, 1, 2_000 + n)
    finally:
        await db.dispose()

    with psycopg.connect(_psycopg_dsn(quiet_pg_url)) as conn:
        row = conn.execute(
            "SELECT credits, (ctid::text::point)[1] FROM accounts WHERE id = %s", (account_id,)
        ).fetchone()
    assert row is not None
    credits, slot = row
    assert credits == 100 + CHANGES
    # The live version's line pointer: without pruning each change takes the next one (41
    # here); pruned, the dead versions' pointers are used again.
    assert slot <= 12
