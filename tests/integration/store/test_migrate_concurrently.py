"""Two nodes that run ``imagegate migrate`` at the same moment both succeed, and migrate once."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from imagegate.store.migrate import MIGRATION_LOCK_KEY, MIGRATIONS
from imagegate.store.tables import metadata
from tests.acceptance.conftest import IMAGEGATE, child_env
from tests.conftest import own_pg_database

pytestmark = pytest.mark.slow

HEAD = max(path.name.split("_", 1)[0] for path in (MIGRATIONS / "versions").glob("0*.py"))


def start_migrate(database_url: str, workdir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [IMAGEGATE, "migrate"],
        cwd=workdir,
        env=child_env(IMAGEGATE_DATABASE_URL=database_url, IMAGEGATE_DATA_DIR=str(workdir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> str:
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    return output


def assert_at_head_once(sync_url: str) -> None:
    engine = create_engine(sync_url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert [row[0] for row in versions] == [HEAD]
    assert {table.name for table in metadata.sorted_tables} <= tables


def dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture
def fresh_pg_url(pg_server_url: str) -> Iterator[str]:
    """An empty PostgreSQL database of this test's own: nothing migrated yet."""
    with own_pg_database(pg_server_url, "imagegate_migrate") as url:
        yield url


def waiting_for_advisory_lock(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchone()
    assert row is not None
    return int(str(row[0]))


def test_two_migrations_released_together_on_postgresql_both_succeed(
    fresh_pg_url: str, tmp_path: Path
) -> None:
    """Both processes are made to wait at the lock, then let go at once: the worst case."""
    with psycopg.connect(dsn(fresh_pg_url), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        first = start_migrate(fresh_pg_url, tmp_path)
        second = start_migrate(fresh_pg_url, tmp_path)
        deadline = time.monotonic() + 90
        while waiting_for_advisory_lock(holder) < 2:
            assert first.poll() is None and second.poll() is None, "a migration did not wait"
            assert time.monotonic() < deadline, "the migrations never reached the lock"
            time.sleep(0.1)
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    assert "up to date" in finish(first)
    assert "up to date" in finish(second)
    assert_at_head_once(dsn(fresh_pg_url).replace("postgresql://", "postgresql+psycopg://"))


def test_two_migrations_started_together_on_a_new_sqlite_file_both_succeed(
    tmp_path: Path,
) -> None:
    """Without the file's write lock held across the DDL, the second fails 'table exists'."""
    database = tmp_path / "imagegate.db"
    url = f"sqlite+aiosqlite:///{database}"
    processes = [start_migrate(url, tmp_path) for _ in range(2)]
    for process in processes:
        finish(process)
    assert_at_head_once(f"sqlite:///{database}")
