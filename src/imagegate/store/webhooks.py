"""Webhook delivery rows: the transactional outbox written beside every job state change, and
the statements the webhook sender runs on it (same lease-and-fence rules as ``queue.claims``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import uuid_utils
from sqlalchemy import exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from imagegate.store.jobs import JobRow
from imagegate.store.tables import job_events, jobs, webhook_attempts, webhook_deliveries
from imagegate.types import Millis, WebhookEvent, WebhookStatus

__all__ = [
    "PROGRESS_INTERVAL_MS",
    "AttemptRow",
    "DeliveryRow",
    "claim_deliveries",
    "enqueue_delivery",
    "latest_delivery",
    "list_attempts",
    "list_deliveries",
    "new_delivery_id",
    "progress_at",
    "record_attempt",
    "requeue_delivery",
    "settle_delivery",
]

PROGRESS_INTERVAL_MS = 1_000
"""At most one ``progress`` webhook per job per second."""


@dataclass(frozen=True)
class DeliveryRow:
    id: str
    job_id: str
    account_id: str
    event: str
    url: str
    status: str
    attempts: int
    run_at: Millis
    lease_token: str | None
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: Millis | None
    created_at: Millis
    delivered_at: Millis | None


def _delivery(row: Any) -> DeliveryRow:
    m = row._mapping
    return DeliveryRow(**{name: m[name] for name in DeliveryRow.__dataclass_fields__})


@dataclass(frozen=True)
class AttemptRow:
    """One attempt to deliver a webhook: the receiver's status code, or why there was none."""

    delivery_id: str
    attempted_at: Millis
    status_code: int | None
    latency_ms: int
    error: str | None
    next_attempt_at: Millis | None


def _wanted(job: JobRow, event: WebhookEvent) -> bool:
    return bool(job.webhook_url) and event in (job.webhook_events or ())


def new_delivery_id(job: JobRow, event: WebhookEvent) -> str | None:
    """The id of ``event``'s delivery for a statement that queues it itself (PostgreSQL's
    ``claims.complete_job``), as ``enqueue_delivery`` would; None when the job asked for no
    such webhook. Not for ``progress``, whose interval only the table knows."""
    assert event is not WebhookEvent.PROGRESS
    return str(uuid_utils.uuid7()) if _wanted(job, event) else None


async def enqueue_delivery(
    conn: AsyncConnection, job: JobRow, event: WebhookEvent, now: Millis
) -> str | None:
    """Queue ``event`` for the job's webhook if the job asked for it; the delivery id, or None.

    ``progress`` events closer than ``PROGRESS_INTERVAL_MS`` to the previous one are dropped
    (the next one carries the newer progress anyway).
    """
    if not _wanted(job, event):
        return None
    if event is WebhookEvent.PROGRESS:
        last = await conn.scalar(
            select(func.max(webhook_deliveries.c.created_at)).where(
                webhook_deliveries.c.job_id == job.id,
                webhook_deliveries.c.event == WebhookEvent.PROGRESS.value,
            )
        )
        if last is not None and now - int(last) < PROGRESS_INTERVAL_MS:
            return None
    delivery_id = str(uuid_utils.uuid7())
    await conn.execute(
        insert(webhook_deliveries).values(
            id=delivery_id,
            job_id=job.id,
            account_id=job.account_id,
            event=event.value,
            url=job.webhook_url,
            status=WebhookStatus.PENDING.value,
            attempts=0,
            run_at=now,
            created_at=now,
        )
    )
    return delivery_id


async def claim_deliveries(
    conn: AsyncConnection, *, owner: str, token: str, now: Millis, lease_ms: int, limit: int
) -> list[DeliveryRow]:
    """Lease up to ``limit`` due pending deliveries, oldest first, **at most one per job**.

    One per job and the oldest due one, so a job's webhooks (``progress`` after ``progress``,
    then ``completed``) go out one after another in the order they happened, never raced
    against each other by concurrent attempts; the next one is claimed in the next round. A job
    with a delivery in flight at another sender (a live lease) is skipped, and on PostgreSQL the
    jobs rows of the chosen deliveries are locked ``SKIP LOCKED`` for the claim, so two senders
    claiming at the same moment never take two deliveries of one job. Only *due* rows count, so
    a failing delivery waiting for its retry does not hold back the rest.
    """
    in_flight = aliased(webhook_deliveries)
    due = (
        select(webhook_deliveries.c.id, webhook_deliveries.c.job_id)
        .where(
            webhook_deliveries.c.status == WebhookStatus.PENDING.value,
            webhook_deliveries.c.run_at <= now,
            (webhook_deliveries.c.lease_expires_at.is_(None))
            | (webhook_deliveries.c.lease_expires_at < now),
            ~exists().where(
                in_flight.c.job_id == webhook_deliveries.c.job_id,
                in_flight.c.status == WebhookStatus.PENDING.value,
                in_flight.c.lease_expires_at >= now,
            ),
        )
        .order_by(
            webhook_deliveries.c.run_at, webhook_deliveries.c.created_at, webhook_deliveries.c.id
        )
        .limit(limit * 4)
        .with_for_update(skip_locked=True)
    )
    chosen: dict[str, str] = {}  # job id → its oldest due delivery
    for delivery_id, job_id in (await conn.execute(due)).all():
        if job_id not in chosen:
            chosen[job_id] = delivery_id
        if len(chosen) == limit:
            break
    if chosen and conn.dialect.name == "postgresql":
        free = (
            select(jobs.c.id).where(jobs.c.id.in_(list(chosen))).with_for_update(skip_locked=True)
        )
        claimable = set((await conn.execute(free)).scalars())
        # Holding the job rows now, look again: a sender that committed its claim between our
        # first look and the lock has a live lease by now.
        leased = select(webhook_deliveries.c.job_id).where(
            webhook_deliveries.c.job_id.in_(list(claimable)),
            webhook_deliveries.c.status == WebhookStatus.PENDING.value,
            webhook_deliveries.c.lease_expires_at >= now,
        )
        claimable -= set((await conn.execute(leased)).scalars())
        chosen = {job_id: row for job_id, row in chosen.items() if job_id in claimable}
    if not chosen:
        return []
    result = await conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id.in_(list(chosen.values())))
        .values(lease_owner=owner, lease_token=token, lease_expires_at=now + lease_ms)
        .returning(*webhook_deliveries.c)
    )
    rows = [_delivery(row) for row in result]
    return sorted(rows, key=lambda row: (row.run_at, row.created_at, row.id))


async def settle_delivery(
    conn: AsyncConnection, delivery_id: str, token: str, values: Mapping[str, Any]
) -> bool:
    """Write an attempt's outcome and release the lease; False when the lease was lost."""
    result = await conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id, webhook_deliveries.c.lease_token == token)
        .values(**values, lease_owner=None, lease_token=None, lease_expires_at=None)
    )
    return result.rowcount == 1


async def record_attempt(conn: AsyncConnection, values: Mapping[str, Any]) -> None:
    await conn.execute(insert(webhook_attempts).values(**values))


async def list_deliveries(conn: AsyncConnection, job_id: str) -> list[DeliveryRow]:
    rows = await conn.execute(
        select(webhook_deliveries)
        .where(webhook_deliveries.c.job_id == job_id)
        .order_by(webhook_deliveries.c.created_at, webhook_deliveries.c.id)
    )
    return [_delivery(row) for row in rows]


async def list_attempts(conn: AsyncConnection, job_id: str) -> list[AttemptRow]:
    rows = await conn.execute(
        select(webhook_attempts)
        .where(webhook_attempts.c.job_id == job_id)
        .order_by(webhook_attempts.c.id)
    )
    return [
        AttemptRow(**{name: row._mapping[name] for name in AttemptRow.__dataclass_fields__})
        for row in rows
    ]


async def latest_delivery(conn: AsyncConnection, job_id: str) -> DeliveryRow | None:
    row = (
        await conn.execute(
            select(webhook_deliveries)
            .where(
                webhook_deliveries.c.job_id == job_id,
                webhook_deliveries.c.event != WebhookEvent.PROGRESS.value,
            )
            .order_by(webhook_deliveries.c.created_at.desc(), webhook_deliveries.c.id.desc())
            .limit(1)
        )
    ).first()
    return _delivery(row) if row else None


async def progress_at(conn: AsyncConnection, job_id: str, at: Millis) -> int | None:
    """The progress the job had reached at ``at``: its last ``progress`` event up to then.

    A ``progress`` delivery is written in the same transaction as that event (same ``now``), so
    this is the value the webhook announces even when it is sent after the job moved on.
    """
    data = await conn.scalar(
        select(job_events.c.data)
        .where(
            job_events.c.job_id == job_id, job_events.c.kind == "progress", job_events.c.at <= at
        )
        .order_by(job_events.c.at.desc(), job_events.c.id.desc())
        .limit(1)
    )
    if not isinstance(data, dict) or not isinstance(data.get("progress"), int):
        return None
    return int(data["progress"])


async def requeue_delivery(conn: AsyncConnection, delivery_id: str, now: Millis) -> bool:
    """Make a delivery due again now, with a fresh attempt budget (manual redelivery).

    False while a sender holds a live lease on it: the attempt in flight must be able to record
    its outcome, so the caller asks again once it has.
    """
    c = webhook_deliveries.c
    result = await conn.execute(
        update(webhook_deliveries)
        .where(c.id == delivery_id, c.lease_expires_at.is_(None) | (c.lease_expires_at < now))
        .values(
            status=WebhookStatus.PENDING.value,
            attempts=0,
            run_at=now,
            lease_owner=None,
            lease_token=None,
            lease_expires_at=None,
        )
    )
    return result.rowcount == 1
