"""Fixtures shared by every tier: real databases (SQLite file, PostgreSQL), settings, runtimes.

PostgreSQL comes from ``IMAGEGATE_TEST_PG_URL`` and Redis from ``IMAGEGATE_TEST_REDIS_URL``
(``scripts/test`` sets both, starting private servers when none is reachable). Without them, those
tests skip — unless
``IMAGEGATE_REQUIRE_SERVICES=1`` (as in CI), where a missing service is a failure, never a skip.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from imagegate.settings import Settings
from imagegate.store.db import Database
from imagegate.store.migrate import upgrade_sync
from imagegate.store.tables import metadata

REQUIRE_SERVICES = os.environ.get("IMAGEGATE_REQUIRE_SERVICES") == "1"


def missing_service(message: str) -> None:
    """Skip in a developer's partial run; fail under ``IMAGEGATE_REQUIRE_SERVICES=1`` (CI)."""
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    url = os.environ.get("IMAGEGATE_TEST_PG_URL")
    if not url:
        missing_service(
            "PostgreSQL is not configured: set IMAGEGATE_TEST_PG_URL (scripts/test does)"
        )
    assert url is not None
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("IMAGEGATE_TEST_REDIS_URL")
    if not url:
        missing_service("Redis is not configured: set IMAGEGATE_TEST_REDIS_URL (scripts/test does)")
    assert url is not None
    return url


def _psycopg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@contextlib.contextmanager
def own_pg_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on ``server_url``, named ``<prefix>_<random>``: its URL.
    It is dropped afterwards, with any connection still open to it."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_psycopg_dsn(server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_psycopg_dsn(server_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database_url(pg_server_url: str) -> Iterator[str]:
    """A migrated PostgreSQL database of this test session's own, dropped at the end."""
    with own_pg_database(pg_server_url, "imagegate_test") as url:
        upgrade_sync(url)
        yield url


@functools.cache
def _emptying_statement(url: str) -> str:
    """Delete every row, children first, and restart the id sequences (as a new database has).

    DELETE rather than TRUNCATE: on the few rows a test leaves, it takes ~7 ms where TRUNCATE
    takes ~60 ms (new files for every table), and it runs before each of the many PostgreSQL tests.
    """
    with psycopg.connect(_psycopg_dsn(url)) as conn:
        sequences = [row[0] for row in conn.execute("SELECT sequencename FROM pg_sequences")]
    deletes = [f'DELETE FROM "{table.name}"' for table in reversed(metadata.sorted_tables)]
    # Last: deleting the jobs counted them out in their sessions' counter rows (migration 0014).
    deletes.append("DELETE FROM account_job_count_slots")
    restarts = [f'ALTER SEQUENCE "{name}" RESTART' for name in sequences]
    return "; ".join(deletes + restarts)


def _truncate_pg(url: str) -> None:
    """Empty every table of the migrated database at ``url``."""
    with psycopg.connect(_psycopg_dsn(url)) as conn:
        conn.execute(_emptying_statement(url))


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated once per session, which ``fresh_sqlite`` copies for each test."""
    path = tmp_path_factory.mktemp("migrated") / "imagegate.db"
    upgrade_sync(f"sqlite+aiosqlite:///{path}")
    return path


def fresh_sqlite(migrated_sqlite: Path, directory: Path) -> str:
    """A migrated SQLite database of its own in ``directory``: a copy, as migrating is slow."""
    database = directory / "imagegate.db"
    shutil.copyfile(migrated_sqlite, database)
    return f"sqlite+aiosqlite:///{database}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, migrated_sqlite: Path) -> str:
    """A fresh, migrated database on each engine: every test using it runs twice."""
    if request.param == "sqlite":
        return fresh_sqlite(migrated_sqlite, tmp_path)
    pg_url: str = request.getfixturevalue("pg_database_url")
    _truncate_pg(pg_url)
    return pg_url


@pytest.fixture
def sqlite_url(tmp_path: Path, migrated_sqlite: Path) -> str:
    """A fresh, migrated SQLite database of this test's own."""
    return fresh_sqlite(migrated_sqlite, tmp_path)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


SANDBOX_MAX_SIDE = 256
"""The longest side of a sandbox image in tests: a 1024 px PNG takes ~75 ms of CPU to encode, a
256 px one ~6 ms, and no test depends on the sandbox's full size."""


def _small_sandbox_images(providers: Any) -> dict[str, Any]:
    """``providers`` (plain dicts) with the sandbox's ``max_side`` set, unless it is given."""
    merged = {name: dict(config) for name, config in (providers or {}).items()}
    sandbox = merged.setdefault("sandbox", {})
    sandbox["options"] = {"max_side": SANDBOX_MAX_SIDE, **sandbox.get("options", {})}
    return merged


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test: fast leases and retries, small sandbox images, a private data dir, no
    config file."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "signing_secret": "test-signing-secret",
        "public_base_url": "http://testserver",
        "lease_seconds": 2.0,
        "poll_interval_seconds": 0.05,
        "retry_base_seconds": 0.01,
        "retry_cap_seconds": 0.05,
        "sandbox_latency_seconds": 0.0,
        "shutdown_grace_seconds": 1.0,
        "outbound_allow_http": True,
        "outbound_allow_networks": ["127.0.0.0/8", "::1/128"],
    }
    values.update(overrides)
    values["providers"] = _small_sandbox_images(values.get("providers"))
    return Settings(**values)


async def count_rows(db: Database, table: str) -> int:
    async with db.read() as conn:
        return int(await conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
