"""Read-only figures for the gateway's operator: the queue's depth and its oldest waiting job."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.store.tables import jobs
from imagegate.types import JobStatus, Millis

__all__ = ["QueueSummary", "queue_summary"]


@dataclass(frozen=True)
class QueueSummary:
    """Jobs not finished yet, across every account."""

    queued: int
    processing: int
    oldest_queued_id: str | None
    oldest_queued_at: Millis | None


async def queue_summary(conn: AsyncConnection) -> QueueSummary:
    """Counts by status (``ix_jobs_account_status`` does not lead with status, so this scans the
    unfinished jobs; the operator view calls it on demand, never per request)."""
    rows = await conn.execute(
        select(jobs.c.status, func.count())
        .where(jobs.c.status.in_([JobStatus.QUEUED.value, JobStatus.PROCESSING.value]))
        .group_by(jobs.c.status)
    )
    counts: dict[str, int] = {str(status): int(count) for status, count in rows}
    oldest = (
        await conn.execute(
            select(jobs.c.id, jobs.c.created_at)
            .where(jobs.c.status == JobStatus.QUEUED.value)
            .order_by(jobs.c.created_at, jobs.c.id)
            .limit(1)
        )
    ).first()
    return QueueSummary(
        queued=int(counts.get(JobStatus.QUEUED.value, 0)),
        processing=int(counts.get(JobStatus.PROCESSING.value, 0)),
        oldest_queued_id=oldest[0] if oldest else None,
        oldest_queued_at=int(oldest[1]) if oldest else None,
    )
