"""Read-only figures for the gateway's operator: the queue's depth and its oldest waiting job, and
the cluster-wide figures ``/metrics`` reports."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.observability.metrics import NO_PROVIDER, ClusterFigures
from imagegate.store.tables import jobs, ledger_entries, webhook_deliveries
from imagegate.types import JobStatus, Millis

__all__ = ["QueueSummary", "cluster_figures", "queue_summary"]


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


async def cluster_figures(conn: AsyncConnection, now: Millis) -> ClusterFigures:
    """The figures ``/metrics`` reports for the whole deployment (the queue's depth per step is
    ``queue.claims.queue_depth``, next to the claims it counts).

    Grouped counts over ``jobs`` and ``webhook_deliveries`` scan those tables (retention keeps
    them bounded); callers cache the answer (``observability.metrics.CLUSTER_TTL_SECONDS``).
    Captured credits are the reservations of jobs with a ``capture`` entry: the capture entry
    itself moves no balance (the credits left the account at reserve).
    """
    by_status = await conn.execute(
        select(jobs.c.status, jobs.c.model, jobs.c.provider, func.count()).group_by(
            jobs.c.status, jobs.c.model, jobs.c.provider
        )
    )
    counts = {
        (str(status), str(model), str(provider or NO_PROVIDER)): int(count)
        for status, model, provider, count in by_status
    }
    oldest = await conn.scalar(
        select(func.min(jobs.c.created_at)).where(jobs.c.status == JobStatus.QUEUED.value)
    )
    captured_jobs = select(ledger_entries.c.job_id).where(ledger_entries.c.kind == "capture")
    captured = await conn.scalar(
        select(func.coalesce(func.sum(-ledger_entries.c.amount), 0)).where(
            ledger_entries.c.kind == "reserve", ledger_entries.c.job_id.in_(captured_jobs)
        )
    )
    refunded = await conn.scalar(
        select(func.coalesce(func.sum(ledger_entries.c.amount), 0)).where(
            ledger_entries.c.kind == "refund"
        )
    )
    deliveries = await conn.execute(
        select(webhook_deliveries.c.event, webhook_deliveries.c.status, func.count()).group_by(
            webhook_deliveries.c.event, webhook_deliveries.c.status
        )
    )
    return ClusterFigures(
        jobs=counts,
        oldest_queued_seconds=max(0.0, (now - int(oldest)) / 1000) if oldest is not None else 0.0,
        credits_captured=int(captured or 0),
        credits_refunded=int(refunded or 0),
        webhook_deliveries={(str(e), str(st)): int(c) for e, st, c in deliveries},
    )
