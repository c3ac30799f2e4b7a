"""Revision 0013: PostgreSQL's ``complete_job`` comes with the upgrade and goes with the
downgrade, and a later upgrade brings it back."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command

from imagegate.store.migrate import alembic_config, upgrade_sync
from tests.conftest import _psycopg_dsn, own_pg_database


@pytest.fixture
def empty_pg_url(pg_server_url: str) -> Iterator[str]:
    """A PostgreSQL database of this test's own with no schema yet."""
    with own_pg_database(pg_server_url, "imagegate_migration") as url:
        yield url


def functions_named(url: str, name: str) -> int:
    with psycopg.connect(_psycopg_dsn(url)) as conn:
        row = conn.execute("SELECT count(*) FROM pg_proc WHERE proname = %s", (name,)).fetchone()
    assert row is not None
    return int(row[0])


def test_the_completion_function_goes_with_a_downgrade_and_comes_back(empty_pg_url: str) -> None:
    upgrade_sync(empty_pg_url)
    assert functions_named(empty_pg_url, "complete_job") == 1

    command.downgrade(alembic_config(empty_pg_url), "0012")
    assert functions_named(empty_pg_url, "complete_job") == 0
    assert functions_named(empty_pg_url, "submit_jobs") == 1

    upgrade_sync(empty_pg_url)
    assert functions_named(empty_pg_url, "complete_job") == 1
