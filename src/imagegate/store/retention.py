"""What the retention sweeper and the upload endpoint read and write."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.store.outputs import OutputRecord
from imagegate.store.tables import jobs, uploads
from imagegate.types import JobStatus, Millis

__all__ = [
    "due_jobs",
    "due_uploads",
    "get_upload",
    "insert_upload",
    "mark_jobs_expired",
    "mark_uploads_deleted",
]


async def due_jobs(
    conn: AsyncConnection, now: Millis, limit: int
) -> list[tuple[str, list[OutputRecord]]]:
    """Completed jobs whose outputs outlived their retention: (job id, output records)."""
    rows = await conn.execute(
        select(jobs.c.id, jobs.c.outputs)
        .where(
            jobs.c.expired.is_(False),
            jobs.c.expires_at <= now,
            jobs.c.status == JobStatus.COMPLETED.value,
        )
        .order_by(jobs.c.expires_at)
        .limit(limit)
    )
    return [(row.id, list(row.outputs or [])) for row in rows]


async def mark_jobs_expired(conn: AsyncConnection, job_ids: Sequence[str], now: Millis) -> None:
    if job_ids:
        await conn.execute(
            update(jobs).where(jobs.c.id.in_(job_ids)).values(expired=True, updated_at=now)
        )


async def insert_upload(conn: AsyncConnection, values: Mapping[str, Any]) -> None:
    await conn.execute(insert(uploads).values(**values))


async def get_upload(conn: AsyncConnection, upload_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(uploads).where(uploads.c.id == upload_id))).first()
    return dict(row._mapping) if row else None


async def due_uploads(conn: AsyncConnection, now: Millis, limit: int) -> list[tuple[str, str]]:
    """Uploads past their expiry that still have a file: (upload id, storage key)."""
    rows = await conn.execute(
        select(uploads.c.id, uploads.c.key)
        .where(uploads.c.deleted.is_(False), uploads.c.expires_at <= now)
        .order_by(uploads.c.expires_at)
        .limit(limit)
    )
    return [(row.id, row.key) for row in rows]


async def mark_uploads_deleted(conn: AsyncConnection, upload_ids: Sequence[str]) -> None:
    if upload_ids:
        await conn.execute(update(uploads).where(uploads.c.id.in_(upload_ids)).values(deleted=True))
