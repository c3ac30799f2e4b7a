"""PostgreSQL's completion functions come with an upgrade and go with a downgrade: 0013's
``complete_job``, and 0022's ``complete_jobs`` that writes each table once per batch (0019's
loop over ``complete_job`` before it); a later upgrade brings each back."""

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


def source_of(url: str, name: str) -> str:
    with psycopg.connect(_psycopg_dsn(url)) as conn:
        row = conn.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", (name,)).fetchone()
    assert row is not None
    return str(row[0])


def test_a_batch_of_completions_goes_back_to_one_call_per_job_with_a_downgrade(
    empty_pg_url: str,
) -> None:
    upgrade_sync(empty_pg_url)
    assert "complete_job(" not in source_of(empty_pg_url, "complete_jobs")

    command.downgrade(alembic_config(empty_pg_url), "0021")
    assert "complete_job(" in source_of(empty_pg_url, "complete_jobs")

    upgrade_sync(empty_pg_url)
    assert "complete_job(" not in source_of(empty_pg_url, "complete_jobs")


def test_a_batch_of_completions_goes_back_to_joining_its_rows_with_a_downgrade(
    empty_pg_url: str,
) -> None:
    upgrade_sync(empty_pg_url)
    assert "j.id = ANY (v_ids)" in source_of(empty_pg_url, "complete_jobs")

    command.downgrade(alembic_config(empty_pg_url), "0022")
    assert "v_ids" not in source_of(empty_pg_url, "complete_jobs")

    upgrade_sync(empty_pg_url)
    assert "j.id = ANY (v_ids)" in source_of(empty_pg_url, "complete_jobs")
