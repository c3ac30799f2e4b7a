"""A process whose background loop keeps crashing exits non-zero instead of serving half-alive."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from imagegate.store.migrate import upgrade_sync
from tests.acceptance.conftest import IMAGEGATE, child_env, free_port
from tests.conftest import _psycopg_dsn, own_pg_database

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def broken_database(pg_server_url: str) -> Iterator[str]:
    """A migrated database whose webhook table is gone: the sender crashes on every round (a
    missing table is a bug to restart from, not an outage to wait out)."""
    with own_pg_database(pg_server_url, "imagegate_broken") as url:
        upgrade_sync(url)
        with psycopg.connect(_psycopg_dsn(url), autocommit=True) as conn:
            conn.execute("DROP TABLE webhook_attempts, webhook_deliveries CASCADE")
        yield url


@pytest.mark.parametrize("command", [["worker"], ["serve"]], ids=["worker", "serve"])
def test_a_process_whose_loop_exhausts_its_restart_budget_exits_non_zero(
    broken_database: str, tmp_path: Path, command: list[str]
) -> None:
    env = child_env(
        IMAGEGATE_DATABASE_URL=broken_database,
        IMAGEGATE_DATA_DIR=str(tmp_path / "data"),
        IMAGEGATE_PORT=str(free_port()),
        IMAGEGATE_LOOP_RESTART_BUDGET="2",
        IMAGEGATE_LOOP_RESTART_BACKOFF_SECONDS="0.05",
        IMAGEGATE_POLL_INTERVAL_SECONDS="0.05",
        IMAGEGATE_LOG_JSON="true",  # the console renderer takes seconds per traceback
    )
    done = subprocess.run(
        [IMAGEGATE, *command], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "loop.gave_up" in done.stdout + done.stderr
