"""``imagegate import``: an embedded install (SQLite and local files) moved onto PostgreSQL and
SeaweedFS keeps its keys, jobs, ledger and images; ``imagegate backup`` copies a live SQLite
database consistently."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from imagegate.store.db import Database
from tests.conftest import _truncate_pg, count_rows
from tests.integration.conftest import SANDBOX_ROUTES, open_gateway
from tests.integration.storage.conftest import S3Server

IMAGEGATE = str(Path(sys.executable).with_name("imagegate"))
BODY = {"model": "gpt-image-1.5", "prompt": "a kite", "gptImageParams": {"quality": "low"}}
FAILING = {**BODY, "prompt": "a storm [[fail:rejected]]"}
TABLES = ("accounts", "api_keys", "ledger_entries", "jobs", "job_events", "webhook_deliveries")


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
    return subprocess.run(
        [IMAGEGATE, *args], env={**clean, **env}, capture_output=True, text=True, timeout=120
    )


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def counts(url: str) -> dict[str, int]:
    db = Database(url)
    try:
        return {table: await count_rows(db, table) for table in TABLES}
    finally:
        await db.dispose()


async def test_an_embedded_install_moves_to_postgres_and_s3(
    sqlite_url: str, pg_database_url: str, seaweed: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    embedded = tmp_path / "embedded"
    async with open_gateway(sqlite_url, embedded, routes=SANDBOX_ROUTES) as before:
        hooked = {**BODY, "webhookUrl": "http://127.0.0.1:9/hook"}
        done = await before.submit(hooked, key=before.live_key)
        failed = await before.submit(FAILING, key=before.live_key)
        assert (done.status_code, failed.status_code) == (202, 202), failed.text
        await before.drain()
        job_id = done.json()["jobId"]
        job = await before.job(job_id, key=before.live_key)
        assert job["status"] == "COMPLETED"
        failed_job = await before.job(failed.json()["jobId"], key=before.live_key)
        assert failed_job["status"] == "FAILED"
        image = await before.http.get(path_of(job["result"]["images"][0]))
        assert image.status_code == 200
        balance = await before.balance()
        live_key = before.live_key
    rows_before = await counts(sqlite_url)

    _truncate_pg(pg_database_url)
    storage = {
        "IMAGEGATE_STORAGE_URL": f"s3://{s3_bucket}/imagegate",
        **{
            f"IMAGEGATE_STORAGE_OPTIONS__{name.upper()}": value
            for name, value in seaweed.storage_options().items()
        },
    }
    imported = run_cli(
        "import",
        str(embedded),
        "--from-database",
        sqlite_url,
        IMAGEGATE_DATABASE_URL=pg_database_url,
        IMAGEGATE_DATA_DIR=str(tmp_path / "target"),
        **storage,
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "stored objects" in imported.stdout
    assert await counts(pg_database_url) == rows_before

    # Importing twice would mix two installs: refused, nothing written.
    again = run_cli(
        "import", str(embedded), "--from-database", sqlite_url,
        IMAGEGATE_DATABASE_URL=pg_database_url, IMAGEGATE_DATA_DIR=str(tmp_path / "target"),
        **storage,
    )  # fmt: skip
    assert again.returncode == 2 and "not empty" in again.stdout
    assert await counts(pg_database_url) == rows_before

    after_settings = {
        "routes": SANDBOX_ROUTES,
        "storage_url": f"s3://{s3_bucket}/imagegate",
        "storage_options": seaweed.storage_options(),
        "storage_url_mode": "gateway",
    }
    target = tmp_path / "target"
    async with open_gateway(pg_database_url, target, credits=0, **after_settings) as after:
        moved = await after.job(job_id, key=live_key)
        assert moved["status"] == "COMPLETED"
        old_url, new_url = job["result"]["images"][0], moved["result"]["images"][0]
        assert urlsplit(new_url).path == urlsplit(old_url).path  # the same stored key
        for url in (old_url, new_url):  # a URL handed out before the move works after it
            downloaded = await after.http.get(path_of(url))
            assert downloaded.status_code == 200
            assert downloaded.content == image.content
        me = await after.http.get("/v2/me", headers={"X-API-Key": live_key})
        assert me.json()["team"]["credits"] == balance
        # The moved install keeps working: a new job on the moved key, charged from its balance.
        response = await after.submit(BODY, key=live_key)
        assert response.status_code == 202, response.text
        await after.drain()
        assert (await after.job(response.json()["jobId"], key=live_key))["status"] == "COMPLETED"


async def test_backup_copies_a_live_sqlite_database(sqlite_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with open_gateway(sqlite_url, data, routes=SANDBOX_ROUTES) as gw:
        await gw.submit(BODY, key=gw.live_key)
        await gw.drain()
        env = {"IMAGEGATE_DATABASE_URL": sqlite_url, "IMAGEGATE_DATA_DIR": str(data)}
        copy = tmp_path / "backup" / "imagegate.db"
        done = run_cli("backup", str(copy), **env)  # while the gateway holds the database open
        assert done.returncode == 0, done.stdout + done.stderr
        assert run_cli("backup", str(copy), **env).returncode == 2  # never overwrites
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert await counts(f"sqlite+aiosqlite:///{copy}") == await counts(sqlite_url)


def test_backup_of_postgres_points_to_pg_dump(pg_database_url: str, tmp_path: Path) -> None:
    done = run_cli(
        "backup",
        str(tmp_path / "x.db"),
        IMAGEGATE_DATABASE_URL=pg_database_url,
        IMAGEGATE_DATA_DIR=str(tmp_path),
    )
    assert done.returncode == 2
    assert "pg_dump" in done.stdout
    assert not (tmp_path / "x.db").exists()
