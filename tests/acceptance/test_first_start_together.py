"""Two ``imagegate serve`` processes started together on one empty PostgreSQL database: one
creates the first account and prints its keys, the other creates nothing, and both serve."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx2
import psycopg
import pytest

from tests.acceptance.conftest import IMAGEGATE, child_env, free_port, wait_until_healthy
from tests.conftest import _psycopg_dsn, _truncate_pg

pytestmark = pytest.mark.slow


def test_two_nodes_starting_together_create_one_account(
    pg_database_url: str, tmp_path: Path
) -> None:
    _truncate_pg(pg_database_url)
    processes: list[tuple[subprocess.Popen[str], str, Path]] = []
    logs = []
    for node in ("a", "b"):
        port = str(free_port())
        out = tmp_path / f"{node}.log"
        logs.append(out.open("w"))
        env = child_env(
            IMAGEGATE_DATABASE_URL=pg_database_url,
            IMAGEGATE_DATA_DIR=str(tmp_path / node),
            IMAGEGATE_SIGNING_SECRET="test-signing-secret",
        )
        process = subprocess.Popen(
            [IMAGEGATE, "serve", "--no-workers", "--port", port],
            env=env,
            stdout=logs[-1],
            stderr=subprocess.STDOUT,
            text=True,
        )
        processes.append((process, f"http://127.0.0.1:{port}", out))
    try:
        for process, base_url, _ in processes:
            wait_until_healthy(base_url, process)
        printed = [out.read_text() for _, _, out in processes]
        keys = [line for text in printed for line in text.splitlines() if "live key:" in line]
        assert len(keys) == 1, printed
        live_key = keys[0].split("live key:")[1].strip()
        for _, base_url, _ in processes:
            me = httpx2.get(f"{base_url}/v2/me", headers={"X-API-Key": live_key}, timeout=10)
            assert me.status_code == 200, me.text
    finally:
        for process, _, _ in processes:
            process.terminate()
        for process, _, _ in processes:
            process.wait(timeout=30)
        for log in logs:
            log.close()
    with psycopg.connect(_psycopg_dsn(pg_database_url)) as conn:
        row = conn.execute("SELECT count(*) FROM accounts").fetchone()
        assert row is not None and row[0] == 1
