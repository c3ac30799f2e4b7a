"""Webhook delivery log and redelivery for a job."""

from __future__ import annotations

from typing import Any

from imagegate.errors import Conflict
from imagegate.services.accounts import Caller
from imagegate.services.jobs import JobService, iso
from imagegate.store import jobs as job_store
from imagegate.store import webhooks as store
from imagegate.store.db import Database
from imagegate.types import Clock

__all__ = ["WebhookLog"]


class WebhookLog:
    def __init__(self, *, db: Database, clock: Clock, jobs: JobService) -> None:
        self._db = db
        self._clock = clock
        self._jobs = jobs

    async def list(self, caller: Caller, job_id: str) -> dict[str, Any]:
        """Every delivery of the job's webhook with each attempt (status, latency, error)."""
        job = await self._jobs.get(caller, job_id)
        async with self._db.read() as conn:
            deliveries = await store.list_deliveries(conn, job.id)
            attempts = await store.list_attempts(conn, job.id)
        return {
            "jobId": job.id,
            "webhookUrl": job.webhook_url,
            "webhookStatus": job.webhook_status,
            "deliveries": [
                {
                    "id": d.id,
                    "event": d.event,
                    "status": d.status,
                    "attempts": [
                        {
                            "attemptedAt": iso(a["attempted_at"]),
                            "statusCode": a["status_code"],
                            "latencyMs": a["latency_ms"],
                            "error": a["error"],
                            "nextAttemptAt": iso(a["next_attempt_at"]),
                        }
                        for a in attempts
                        if a["delivery_id"] == d.id
                    ],
                    "nextAttemptAt": iso(d.run_at) if d.status == "pending" else None,
                    "createdAt": iso(d.created_at),
                    "deliveredAt": iso(d.delivered_at),
                }
                for d in deliveries
            ],
        }

    async def redeliver(self, caller: Caller, job_id: str) -> dict[str, Any]:
        """Queue the job's last ``completed``/``failed`` event again, under the same webhook-id."""
        job = await self._jobs.get(caller, job_id)
        now = self._clock.now_ms()
        async with self._db.transaction() as conn:
            latest = await store.latest_delivery(conn, job.id)
            if latest is None:
                raise Conflict("This job has no completed or failed webhook to redeliver")
            if not await store.requeue_delivery(conn, latest.id, now):
                raise Conflict("This webhook is being delivered right now; try again in a minute")
            await job_store.set_webhook_status(conn, job.id, "pending")
        return {"id": latest.id, "event": latest.event, "status": "pending"}
