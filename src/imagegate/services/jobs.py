"""Reading, listing, following and cancelling jobs; their wire shape is built by
``imagegate.presenters``."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from imagegate.errors import JobAlreadyFinished, NotFound, ValidationFailed
from imagegate.presenters import SignedJob, output_keys
from imagegate.queue.events import JobSignals
from imagegate.queue.wakeup import Wakeup, notify_in_transaction
from imagegate.services.accounts import Caller
from imagegate.storage.port import ObjectStore
from imagegate.store import accounts
from imagegate.store import jobs as job_store
from imagegate.store.db import Database
from imagegate.store.jobs import JobRow
from imagegate.types import Clock, JobStatus, JobStep, Millis

__all__ = ["JobEvent", "JobPage", "JobService", "check_job_id"]


def check_job_id(value: str, field: str = "id") -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValidationFailed({field: ["must be a UUID"]}, message="Invalid job id") from None


def _encode_cursor(job: JobRow) -> str:
    raw = json.dumps({"c": job.created_at, "i": job.id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[Millis, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        created_at, job_id = data["c"], data["i"]
        if not isinstance(created_at, int) or not isinstance(job_id, str):
            raise TypeError
        return created_at, str(uuid.UUID(job_id))
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed({"cursor": ["is not a cursor this API returned"]}) from None


@dataclass(frozen=True)
class JobPage:
    jobs: list[SignedJob]
    next_cursor: str | None
    has_more: bool
    models: list[str] | None


@dataclass(frozen=True)
class JobEvent:
    """One ``job_events`` row as a follower sees it; ``id`` orders them and resumes a stream.

    ``status`` and ``progress`` are the job's as of this event: a row made by a worker
    (``submitted``, ``progress``, ``stored``, ``retry``, …) belongs to a PROCESSING job.
    """

    id: int
    kind: str
    at: Millis
    status: JobStatus
    progress: int
    data: dict[str, Any]


_STATUS_OF_KIND = {
    "queued": JobStatus.QUEUED,
    "completed": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
    "upstream_cancel": JobStatus.CANCELLED,
}


def _job_events(rows: list[dict[str, Any]]) -> list[JobEvent]:
    events: list[JobEvent] = []
    progress = 0
    status = JobStatus.QUEUED
    for row in rows:
        data = dict(row["data"] or {})
        kind = str(row["kind"])
        status = _STATUS_OF_KIND.get(
            kind, JobStatus.PROCESSING if not status.is_terminal else status
        )
        if kind == "progress":
            progress = max(progress, int(data.get("progress", progress)))
        elif status is JobStatus.COMPLETED:
            progress = 100
        events.append(JobEvent(int(row["id"]), kind, int(row["at"]), status, progress, data))
    return events


class JobService:
    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        store: ObjectStore,
        wakeup: Wakeup,
        url_ttl_seconds: int,
        signals: JobSignals | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._store = store
        self._wakeup = wakeup
        self._url_ttl = url_ttl_seconds
        self._signals = signals or JobSignals()

    async def get(self, caller: Caller, job_id: str) -> JobRow:
        job_id = check_job_id(job_id)
        job = await self._db.read_each(job_store.get_own_jobs, (job_id, caller.account_id))
        if job is None:
            raise NotFound("Job not found")
        return job

    async def wait(self, caller: Caller, job_id: str, timeout: float) -> JobRow:
        """The caller's job once it is finished, or as it stands when ``timeout`` seconds pass.

        Callers that answer synchronously (``Prefer: wait``, the OpenAI-compatible endpoints)
        use this one method. It re-reads the job (one indexed read) each time the job's change
        signal fires (``imagegate.queue.events``), and every ``poll_seconds`` without one.
        """
        deadline = time.monotonic() + timeout
        with self._signals.watch(check_job_id(job_id)) as changed:
            while True:
                changed.clear()  # before the read, so a change during it is not missed
                job = await self.get(caller, job_id)
                left = deadline - time.monotonic()
                if JobStatus(job.status).is_terminal or left <= 0:
                    return job
                await self._signals.next_change(changed, left)

    async def follow(
        self, caller: Caller, job_id: str, after: int | None = None, heartbeat: float = 15.0
    ) -> AsyncGenerator[JobEvent | SignedJob | None, None]:
        """What ``GET /v2/jobs/{id}/events`` streams: the job's events after event ``after``,
        in order and each once, then the finished job; None every ``heartbeat`` idle seconds.

        The job is looked up here (another account's job raises ``NotFound`` before anything
        is streamed). Each signal re-reads the events and the job; the job is read first, so
        once it reads as finished every event of it (committed with the status) is seen.
        """
        job_id = check_job_id(job_id)
        await self.get(caller, job_id)
        return self._follow(caller, job_id, after or 0, heartbeat)

    async def _follow(
        self, caller: Caller, job_id: str, after: int, heartbeat: float
    ) -> AsyncGenerator[JobEvent | SignedJob | None, None]:
        loop = asyncio.get_running_loop()
        with self._signals.watch(job_id) as changed:
            idle_since = loop.time()
            while True:
                changed.clear()
                async with self._db.read() as conn:
                    job = await job_store.get_job(conn, job_id, caller.account_id)
                    rows = await job_store.list_events(conn, job_id)
                if job is None:  # deleted meanwhile
                    return
                for event in _job_events(rows):
                    if event.id > after:
                        after = event.id
                        idle_since = loop.time()
                        yield event
                if JobStatus(job.status).is_terminal:
                    yield await self.sign(job)
                    return
                left = idle_since + heartbeat - loop.time()
                if left <= 0:
                    idle_since = loop.time()
                    yield None
                    continue
                await self._signals.next_change(changed, left)

    async def sign(self, job: JobRow) -> SignedJob:
        """The job with fresh signed URLs for the outputs it shows (they expire, so every read)."""
        urls = {key: await self._store.url(key, self._url_ttl) for key in output_keys(job)}
        return SignedJob(job, urls)

    async def show(self, caller: Caller, job_id: str) -> SignedJob:
        """``GET /v2/jobs/{id}``: the caller's job, ready to present."""
        return await self.sign(await self.get(caller, job_id))

    async def list(
        self,
        caller: Caller,
        *,
        limit: int,
        cursor: str | None,
        status: str | None,
        model: str | None,
        search: str | None,
        include_models: bool,
    ) -> JobPage:
        after = _decode_cursor(cursor) if cursor else None
        job_id = check_job_id(search, "search") if search else None
        async with self._db.read() as conn:
            rows = await job_store.list_jobs(
                conn,
                caller.account_id,
                limit=limit,
                after=after,
                status=status,
                model=model,
                job_id=job_id,
            )
            models = (
                await job_store.distinct_models(conn, caller.account_id) if include_models else None
            )
        has_more = len(rows) > limit
        rows = rows[:limit]
        return JobPage(
            jobs=[await self.sign(row) for row in rows],
            next_cursor=_encode_cursor(rows[-1]) if has_more else None,
            has_more=has_more,
            models=models,
        )

    async def cancel(self, caller: Caller, job_id: str) -> SignedJob:
        """Cancel a queued or running job and refund it; a finished job is a 409.

        The job is CANCELLED at once. Its lease token is cleared, so a worker still running a
        step for it loses its fence and drops its result; if an upstream task exists, the job is
        left at step ``cancel`` so a worker asks the vendor to stop it.
        """
        job_id = check_job_id(job_id)
        now = self._clock.now_ms()
        async with self._db.transaction() as conn:
            job = await job_store.get_job(conn, job_id, caller.account_id)
            if job is None:
                raise NotFound("Job not found")
            if JobStatus(job.status).is_terminal:
                raise JobAlreadyFinished(f"Job is already {job.status}")
            step = JobStep.CANCEL if job.provider_task_id else JobStep.DONE
            cancelled = await job_store.mark_cancelled(conn, job, step, now)
            if not cancelled:
                raise JobAlreadyFinished("Job finished while it was being cancelled")
            if job.credit_cost:
                await accounts.refund(
                    conn, job.account_id, job.id, job.credit_cost, now, "job cancelled"
                )
            await job_store.add_event(conn, job.id, "cancelled", now)
            if step is JobStep.CANCEL:
                await notify_in_transaction(conn)
            updated = await job_store.get_job(conn, job_id)
            await self._signals.changing(conn, job_id)
        await self._signals.changed(job_id)
        if step is JobStep.CANCEL:
            self._wakeup.notify()
        assert updated is not None
        return await self.sign(updated)
