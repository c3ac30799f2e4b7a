"""Revision 0003: job outputs stored in the old camelCase shape read as typed records, and back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.dialects.postgresql import JSONB

from imagegate.presenters import SignedJob, job_body
from imagegate.store import jobs as job_store
from imagegate.store.db import Database
from imagegate.store.migrate import alembic_config, upgrade_sync
from imagegate.store.outputs import OutputRecord
from imagegate.types import JobStatus, JobStep
from tests.conftest import own_pg_database
from tests.factories import add_account, add_job

OLD_SHAPE: list[dict[str, Any]] = [
    {
        "key": "outputs/j/1.png",
        "contentType": "image/png",
        "byteSize": 2048,
        "width": 1024,
        "height": 768,
        "sha256": "ab" * 32,
    },
    {
        "key": "outputs/j/grid.png",
        "contentType": "image/png",
        "byteSize": 8192,
        "width": 2048,
        "height": 1536,
        "sha256": "cd" * 32,
        "grid": True,
    },
]

RECORDS = [
    OutputRecord("outputs/j/1.png", "image/png", 2048, 1024, 768, "ab" * 32),
    OutputRecord("outputs/j/grid.png", "image/png", 8192, 2048, 1536, "cd" * 32, grid=True),
]

raw_jobs = sa.table(
    "jobs",
    sa.column("id", sa.String(36)),
    sa.column("outputs", sa.JSON().with_variant(JSONB(), "postgresql")),
)
"""``jobs`` as plain JSON, so the test reads and writes exactly what the database holds."""


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of this test's own with no schema yet, on each engine."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'imagegate.db'}"
        return
    server: str = request.getfixturevalue("pg_server_url")
    with own_pg_database(server, "imagegate_migration") as url:
        yield url


async def stored_outputs(url: str, job_id: str) -> Any:
    db = Database(url)
    try:
        async with db.read() as conn:
            return await conn.scalar(sa.select(raw_jobs.c.outputs).where(raw_jobs.c.id == job_id))
    finally:
        await db.dispose()


async def test_old_rows_read_as_records_after_upgrade_and_come_back_after_downgrade(
    empty_database_url: str,
) -> None:
    url = empty_database_url
    upgrade_sync(url, "0002")
    db = Database(url)
    try:
        account = await add_account(db)
        job_id = await add_job(
            db, account, status=JobStatus.COMPLETED.value, step=JobStep.DONE.value, progress=100
        )
        untouched = await add_job(db, account)
        async with db.transaction() as conn:
            await conn.execute(
                sa.update(raw_jobs).where(raw_jobs.c.id == job_id).values(outputs=OLD_SHAPE)
            )
    finally:
        await db.dispose()

    upgrade_sync(url)

    db = Database(url)
    try:
        async with db.read() as conn:
            job = await job_store.get_job(conn, job_id)
            queued = await job_store.get_job(conn, untouched)
    finally:
        await db.dispose()
    assert job is not None and job.outputs == RECORDS
    assert queued is not None and queued.outputs is None
    urls = {"outputs/j/1.png": "https://files/1", "outputs/j/grid.png": "https://files/grid"}
    body = job_body(SignedJob(job, urls))
    assert body["result"] == {"images": ["https://files/1"], "gridUrl": "https://files/grid"}
    assert body["outputs"] == [
        {**{k: v for k, v in OLD_SHAPE[0].items() if k != "key"}, "url": "https://files/1"}
    ]
    stored = await stored_outputs(url, job_id)
    assert stored[0]["content_type"] == "image/png" and stored[0]["grid"] is False

    command.downgrade(alembic_config(url), "0002")

    assert await stored_outputs(url, job_id) == OLD_SHAPE
    assert await stored_outputs(url, untouched) is None
