"""The retention sweeper: deletes expired outputs and uploads from storage.

A completed job keeps its outputs until ``expires_at`` (``output_retention_days`` after it
finished); then its files are deleted and the job shows ``expired: true`` with no result URLs.
Uploads live ``upload_ttl_seconds``. Files are deleted before the rows are marked, and deleting a
missing file is not an error, so a sweep interrupted at any point is simply finished by the next.
Several processes may sweep at once; the work is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from imagegate.storage.port import ObjectStore
from imagegate.store import retention
from imagegate.store.db import Database
from imagegate.types import Clock

__all__ = ["Sweeper"]

log = structlog.get_logger("imagegate.retention")

BATCH = 200


class Sweeper:
    def __init__(
        self, *, db: Database, clock: Clock, store: ObjectStore, interval: float = 60.0
    ) -> None:
        self._db = db
        self._clock = clock
        self._store = store
        self._interval = interval
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sweep()
            except Exception:
                log.exception("retention.sweep_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)

    async def sweep(self) -> tuple[int, int]:
        """One pass; how many jobs expired and uploads were deleted."""
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
        if expired_jobs or deleted_uploads:
            log.info("retention.swept", jobs=expired_jobs, uploads=deleted_uploads)
        return expired_jobs, deleted_uploads
