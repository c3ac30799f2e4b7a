"""The retention sweeper: deletes expired outputs and uploads, and forgets expired Idempotency-Keys.

A completed job keeps its outputs until ``expires_at`` (``output_retention_days`` after it
finished); then its files are deleted and the job shows ``expired: true`` with no result URLs.
Uploads live ``upload_ttl_seconds``. Files are deleted before the rows are marked, and deleting a
missing file is not an error, so a sweep interrupted at any point is simply finished by the next.
An ``Idempotency-Key`` is remembered ``idempotency_ttl_hours``; past that a request with the same
key makes a new job anyway, so its row is only dead weight and each sweep deletes it.
Several processes may sweep at once; the work is idempotent. A sweep that cannot reach the
database or the store is an outage (logged when it starts and when it ends) and is tried again
with back-off; anything else is a bug and crashes the loop, for its supervisor to restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import structlog
from obstore.exceptions import BaseError as StoreError

from imagegate.errors import ServiceUnavailable
from imagegate.storage.port import ObjectStore
from imagegate.store import jobs as job_store
from imagegate.store import retention
from imagegate.store.db import Database
from imagegate.supervisor import Outage
from imagegate.types import Clock

__all__ = ["Sweeper", "Swept"]

log = structlog.get_logger("imagegate.retention")

BATCH = 200


@dataclass(frozen=True)
class Swept:
    """What one sweep removed: jobs whose outputs expired, uploads, Idempotency-Key records."""

    jobs: int
    uploads: int
    idempotency_keys: int


class Sweeper:
    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        store: ObjectStore,
        interval: float = 60.0,
        outage: Outage | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._store = store
        self._interval = interval
        self._stopping = asyncio.Event()
        self._outage = outage or Outage("retention")

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            wait = self._interval
            try:
                await self.sweep()
                self._outage.recovered()
            except (ServiceUnavailable, OSError, StoreError) as exc:
                wait = min(self._outage.failed(exc), self._interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), wait)

    async def sweep(self) -> Swept:
        """One pass; what it removed."""
        now = self._clock.now_ms()
        expired_jobs = deleted_uploads = 0
        while True:
            async with self._db.read() as conn:
                due = await retention.due_jobs(conn, now, BATCH)
            if not due:
                break
            for _job_id, outputs in due:
                for record in outputs:
                    await self._store.delete(record.key)
            async with self._db.transaction() as conn:
                await retention.mark_jobs_expired(conn, [job_id for job_id, _ in due], now)
            expired_jobs += len(due)
        while True:
            async with self._db.read() as conn:
                files = await retention.due_uploads(conn, now, BATCH)
            if not files:
                break
            for _upload_id, key in files:
                await self._store.delete(key)
            async with self._db.transaction() as conn:
                await retention.mark_uploads_deleted(conn, [upload_id for upload_id, _ in files])
            deleted_uploads += len(files)
        async with self._db.transaction() as conn:
            purged_keys = await job_store.purge_idempotency(conn, now)
        swept = Swept(expired_jobs, deleted_uploads, purged_keys)
        if expired_jobs or deleted_uploads or purged_keys:
            log.info(
                "retention.swept", jobs=expired_jobs, uploads=deleted_uploads, keys=purged_keys
            )
        return swept
