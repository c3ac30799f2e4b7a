"""Webhook delivery log and redelivery for a job."""

from __future__ import annotations

from dataclasses import dataclass

from imagegate.errors import Conflict
from imagegate.services.accounts import Caller
from imagegate.services.jobs import JobService
from imagegate.store import jobs as job_store
from imagegate.store import webhooks as store
from imagegate.store.db import Database
from imagegate.store.jobs import JobRow
from imagegate.store.webhooks import AttemptRow, DeliveryRow
from imagegate.types import Clock, WebhookStatus

__all__ = ["DeliveryLog", "WebhookLog"]


@dataclass(frozen=True)
class DeliveryLog:
    job: JobRow
    deliveries: list[DeliveryRow]
    attempts: list[AttemptRow]


class WebhookLog:
    def __init__(self, *, db: Database, clock: Clock, jobs: JobService) -> None:
        self._db = db
        self._clock = clock
        self._jobs = jobs

    async def list(self, caller: Caller, job_id: str) -> DeliveryLog:
        """Every delivery of the job's webhook with each attempt (status, latency, error)."""
        job = await self._jobs.get(caller, job_id)
        async with self._db.read() as conn:
            deliveries = await store.list_deliveries(conn, job.id)
            attempts = await store.list_attempts(conn, job.id)
        return DeliveryLog(job, deliveries, attempts)

    async def redeliver(self, caller: Caller, job_id: str) -> DeliveryRow:
        """Queue the job's last ``completed``/``failed`` event again, under the same webhook-id;
        the delivery queued."""
        job = await self._jobs.get(caller, job_id)
        now = self._clock.now_ms()
        async with self._db.transaction() as conn:
            latest = await store.latest_delivery(conn, job.id)
            if latest is None:
                raise Conflict("This job has no completed or failed webhook to redeliver")
            if not await store.requeue_delivery(conn, latest.id, now):
                raise Conflict("This webhook is being delivered right now; try again in a minute")
            await job_store.set_webhook_status(conn, job.id, WebhookStatus.PENDING)
        return latest
