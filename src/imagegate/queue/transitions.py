"""Every change a worker makes to a claimed job, each one fenced transaction.

``JobTransitions`` is their one owner (submitted, progress, stored, completed, failed, retry,
failover, deferred, released); the runner only calls it. They live in the queue, next to the
``claims`` statements whose lease tokens fence them, so the worker never calls up a layer.

Every function takes the job's ``Lease``; if the lease was lost (expired and taken over, or the
job was cancelled) the fenced update matches no row and ``LeaseLost`` is raised *inside* the
transaction, so nothing else of it — no capture, no refund, no webhook row — is committed.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.errors import UpstreamError, UpstreamRetryable
from imagegate.observability.metrics import NO_PROVIDER, Metrics
from imagegate.providers.port import Pending, Submitted
from imagegate.queue import claims
from imagegate.queue.backoff import retry_delay
from imagegate.queue.events import JobSignals
from imagegate.settings import Settings
from imagegate.store import accounts
from imagegate.store import jobs as job_store
from imagegate.store.db import Body, Database
from imagegate.store.jobs import JobRow
from imagegate.store.outputs import OutputRecord
from imagegate.store.webhooks import enqueue_delivery, new_delivery_id
from imagegate.types import Clock, JobStatus, JobStep, Route, WebhookEvent, WebhookStatus

__all__ = ["JobTransitions", "Lease", "LeaseLost"]

log = structlog.get_logger("imagegate.worker")
_stdlib_log = logging.getLogger("imagegate.worker")

T = TypeVar("T")


@dataclass(frozen=True)
class Lease:
    job_id: str
    token: str


class LeaseLost(Exception):
    """Another worker (or a cancel) took the job; this worker's result is dropped."""


@dataclass(frozen=True)
class _Completion:
    """What completing a job writes, worked out once for either way of writing it."""

    now: int
    charged: int
    expires_at: int
    webhook_status: str | None
    refund_note: str
    stored: tuple[Route, Sequence[OutputRecord]] | None


@dataclass(frozen=True)
class _OneAccount:
    """``claims.complete_jobs`` for the jobs of one account. ``Database.write_each`` batches
    the items of equal callables together, so a batch never holds two accounts' jobs: their
    locks, taken together, could wait in a cycle on a submit batch's."""

    account_id: str

    async def __call__(
        self, conn: AsyncConnection, completions: list[claims.Completion]
    ) -> list[JobRow | None]:
        return await claims.complete_jobs(conn, completions)


class JobTransitions:
    """The job transitions of ``imagegate.queue.runner``; completing and failing also move the
    credits and queue the webhook in the same transaction."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: Settings,
        metrics: Metrics | None = None,
        signals: JobSignals | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings
        self._metrics = metrics or Metrics()
        self._signals = signals or JobSignals()

    def _changing(self, job_id: str) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A transaction that changes ``job_id``; its readers are signalled once it commits."""
        return self._signals.transaction(self._db.transaction(), job_id)

    async def _change(self, job_id: str, body: Body[T]) -> T:
        """``body`` as one write transaction that changes ``job_id`` (on SQLite, one trip to the
        writer's thread; see ``Database.write``); its readers are signalled once it commits."""

        async def changing(conn: AsyncConnection) -> T:
            result = await body(conn)
            await self._signals.changing(conn, job_id)
            return result

        result = await self._db.write(changing)
        await self._signals.changed(job_id)
        return result

    def _now(self) -> int:
        return self._clock.now_ms()

    async def _release(
        self, lease: Lease, values: Mapping[str, Any], event: str, data: Any
    ) -> None:
        now = self._now()

        async def body(conn: AsyncConnection) -> None:
            if not await claims.release(
                conn, lease.job_id, lease.token, {**values, "updated_at": now}
            ):
                raise LeaseLost(lease.job_id)
            await job_store.add_event(conn, lease.job_id, event, now, data)

        await self._change(lease.job_id, body)

    async def submitted(self, lease: Lease, route: Route, outcome: Submitted) -> None:
        """Commit the upstream task id before anything else, so the job is never submitted twice."""
        now = self._now()
        await self._release(
            lease,
            {
                "provider": route.provider,
                "upstream_model": route.upstream_model,
                "provider_task_id": outcome.task_id,
                "provider_state": dict(outcome.state),
                "step": JobStep.POLL.value,
                "run_at": now + int(outcome.poll_after * 1000),
                "attempts": 0,
            },
            "submitted",
            {"provider": route.provider, "task": outcome.task_id},
        )

    async def pending(self, lease: Lease, job: JobRow, outcome: Pending) -> None:
        now = self._now()
        progress = job.progress
        if outcome.progress is not None:
            progress = max(job.progress, min(99, outcome.progress))
        values: dict[str, Any] = {
            "progress": progress,
            "run_at": now + int(outcome.poll_after * 1000),
            "attempts": 0,
        }
        if outcome.state is not None:
            values["provider_state"] = dict(outcome.state)

        async def body(conn: AsyncConnection) -> str | None:
            ok = await claims.release(
                conn, lease.job_id, lease.token, {**values, "updated_at": now}
            )
            if not ok:
                raise LeaseLost(lease.job_id)
            if progress == job.progress:
                return None
            await job_store.add_event(conn, job.id, "progress", now, {"progress": progress})
            return await enqueue_delivery(conn, job, WebhookEvent.PROGRESS, now)

        queued = await self._change(lease.job_id, body)
        if queued:
            self._signals.deliveries_queued()

    async def fetched(self, lease: Lease, route: Route, outputs: Sequence[OutputRecord]) -> None:
        """Record the stored outputs; a restart from here finishes without asking upstream again."""
        now = self._now()
        async with self._changing(lease.job_id) as conn:
            ok = await claims.fenced_update(
                conn,
                lease.job_id,
                lease.token,
                {
                    "provider": route.provider,
                    "upstream_model": route.upstream_model,
                    "outputs": list(outputs),
                    "step": JobStep.FETCH.value,
                    "updated_at": now,
                },
            )
            if not ok:
                raise LeaseLost(lease.job_id)
            await job_store.add_event(conn, lease.job_id, "stored", now, {"outputs": len(outputs)})

    async def complete(
        self,
        lease: Lease,
        job: JobRow,
        delivered: int,
        *,
        served_by: str | None = None,
        stored: tuple[Route, Sequence[OutputRecord]] | None = None,
    ) -> JobRow:
        """COMPLETED, credits captured and the webhook queued — all or nothing; the job as
        written (a caller that answers with it needs no read).

        ``served_by`` is the provider that delivered, when ``job`` was read before one was
        recorded (a synchronous vendor answers within the step that chose it). ``stored`` (the
        route that served and the outputs just stored) records what ``fetched`` records, in
        the same transaction: one write instead of two when the job finishes at once.

        A vendor that delivered fewer images than the job paid for (``delivered`` <
        ``outputs_expected``) is charged pro rata, rounded up; the rest is refunded.
        """
        now = self._now()
        retention_ms = (job.retention_days or self._settings.output_retention_days) * 86_400_000
        charged = job.credit_cost
        if 0 < delivered < job.outputs_expected:
            charged = -(-job.credit_cost * delivered // job.outputs_expected)
        completion = _Completion(
            now=now,
            charged=charged,
            expires_at=now + retention_ms,
            webhook_status=WebhookStatus.PENDING.value if job.webhook_url else None,
            refund_note=f"delivered {delivered} of {job.outputs_expected} images",
            stored=stored,
        )
        if self._db.is_postgres:
            finished, queued = await self._complete_in_one(lease, job, completion)
        else:
            finished, queued = await self._complete_row_by_row(lease, job, completion)
        if queued:
            self._signals.deliveries_queued()
        provider = served_by or job.provider or NO_PROVIDER
        self._metrics.jobs_finished.labels(job.model, "COMPLETED", provider).inc()
        if _stdlib_log.isEnabledFor(logging.INFO):
            # Below the level structlog would still bind a logger and run its processors, ~9 µs
            # of the event loop for each job, before the level drops the line.
            log.info("job.completed", job_id=job.id, model=job.model)
        return finished

    async def _complete_in_one(
        self, lease: Lease, job: JobRow, completion: _Completion
    ) -> tuple[JobRow, str | None]:
        """PostgreSQL: the completion as one statement, which also sends the NOTIFY ``_change``
        would; the job as written and its webhook delivery's id.

        Without a refund, the completions of one account's jobs that finish in the same turn of
        the event loop, or while another batch of theirs is written, go together, one statement
        and one commit (``claims.complete_jobs``); with a refund it is ``claims.complete_job``
        alone."""
        delivery_id = new_delivery_id(job, WebhookEvent.COMPLETED)
        one = claims.Completion(
            job_id=job.id,
            token=lease.token,
            now=completion.now,
            charged=completion.charged,
            expires_at=completion.expires_at,
            webhook_status=completion.webhook_status,
            stored=completion.stored,
            delivery_id=delivery_id,
            channel=self._signals.channel,
            refund=job.credit_cost - completion.charged,
            refund_note=completion.refund_note,
        )
        finished: JobRow | None
        if one.refund:
            finished = await self._db.write_alone(
                functools.partial(claims.complete_job, completion=one)
            )
        else:
            finished = await self._db.write_each(
                _OneAccount(job.account_id), one, alone=True, after_turn=True
            )
        if finished is None:
            raise LeaseLost(job.id)
        await self._signals.changed(job.id)
        return finished, delivery_id

    async def _complete_row_by_row(
        self, lease: Lease, job: JobRow, completion: _Completion
    ) -> tuple[JobRow, str | None]:
        """SQLite: the completion a statement per row, in one trip to the writer's thread."""
        now, charged, stored = completion.now, completion.charged, completion.stored
        values: dict[str, Any] = {}
        if stored is not None:
            route, outputs = stored
            values = {
                "provider": route.provider,
                "upstream_model": route.upstream_model,
                "outputs": list(outputs),
            }

        async def body(conn: AsyncConnection) -> tuple[JobRow, str | None]:
            finished = await claims.release_job(
                conn,
                job.id,
                lease.token,
                {
                    **values,
                    "status": JobStatus.COMPLETED.value,
                    "step": JobStep.DONE.value,
                    "progress": 100,
                    "credit_cost": charged,
                    "completed_at": now,
                    "expires_at": completion.expires_at,
                    "webhook_status": completion.webhook_status,
                    "updated_at": now,
                },
            )
            if finished is None:
                raise LeaseLost(job.id)
            if stored is not None:
                stored_count = {"outputs": len(stored[1])}
                await job_store.add_event(conn, job.id, "stored", now, stored_count)
            if charged < job.credit_cost:
                refund = job.credit_cost - charged
                note = completion.refund_note
                await accounts.refund(conn, job.account_id, job.id, refund, now, note)
            if charged:
                await accounts.capture(conn, job.account_id, job.id, charged, now)
            await job_store.add_event(conn, job.id, "completed", now)
            return finished, await enqueue_delivery(conn, job, WebhookEvent.COMPLETED, now)

        return await self._change(job.id, body)

    async def fail(
        self, lease: Lease, job: JobRow, message: str, code: str, *, provider: str | None = None
    ) -> None:
        """FAILED, credits refunded and the webhook queued — all or nothing.

        ``provider`` is the one whose answer failed the job, when ``job`` does not name it yet.
        """
        now = self._now()

        async def body(conn: AsyncConnection) -> str | None:
            ok = await claims.release(
                conn,
                job.id,
                lease.token,
                {
                    "status": JobStatus.FAILED.value,
                    "step": JobStep.DONE.value,
                    "error": message,
                    "error_code": code,
                    "credit_cost": 0,
                    "completed_at": now,
                    "webhook_status": WebhookStatus.PENDING.value if job.webhook_url else None,
                    "updated_at": now,
                },
            )
            if not ok:
                raise LeaseLost(job.id)
            if job.credit_cost:
                await accounts.refund(
                    conn, job.account_id, job.id, job.credit_cost, now, f"job failed: {code}"
                )
            await job_store.add_event(conn, job.id, "failed", now, {"code": code, "error": message})
            return await enqueue_delivery(conn, job, WebhookEvent.FAILED, now)

        queued = await self._change(job.id, body)
        if queued:
            self._signals.deliveries_queued()
        by = provider or job.provider or NO_PROVIDER
        self._metrics.jobs_finished.labels(job.model, "FAILED", by).inc()
        log.info("job.failed", job_id=job.id, model=job.model, code=code, error=message)

    async def _gave_up(
        self, lease: Lease, job: JobRow, attempts: int, error: UpstreamError
    ) -> bool:
        """Fail the job when ``attempts`` reached ``max_attempts``; True when it did."""
        if attempts < self._settings.max_attempts:
            return False
        message = f"{error.message} (gave up after {attempts} attempts)"
        await self.fail(lease, job, message, error.code)
        return True

    async def retry(self, lease: Lease, job: JobRow, error: UpstreamRetryable) -> None:
        """Retry later (full-jitter backoff, never before the vendor's Retry-After), or give up."""
        attempts = job.attempts + 1
        self._metrics.job_retries.labels(error.provider or job.provider or NO_PROVIDER).inc()
        if await self._gave_up(lease, job, attempts, error):
            return
        delay = retry_delay(
            attempts,
            base=self._settings.retry_base_seconds,
            cap=self._settings.retry_cap_seconds,
            advised=error.retry_after,
        )
        now = self._now()
        await self._release(
            lease,
            {"attempts": attempts, "run_at": now + int(delay * 1000)},
            "retry",
            {"attempt": attempts, "delay": round(delay, 3), "error": error.message},
        )

    async def failover(
        self, lease: Lease, job: JobRow, route_index: int, error: UpstreamError
    ) -> None:
        """Try the next route at once; the failed attempt still counts toward ``max_attempts``."""
        attempts = job.attempts + 1
        self._metrics.failovers.labels(error.provider or NO_PROVIDER).inc()
        if await self._gave_up(lease, job, attempts, error):
            return
        await self._release(
            lease,
            {"attempts": attempts, "route_index": route_index, "run_at": self._now()},
            "failover",
            {"from": error.provider, "route_index": route_index, "error": error.message},
        )

    async def defer(self, lease: Lease, seconds: float, reason: str) -> None:
        """Put the job back for later without counting an attempt (the provider is busy)."""
        await self._release(
            lease, {"run_at": self._now() + int(seconds * 1000)}, "deferred", {"reason": reason}
        )

    async def cancelled_upstream(self, lease: Lease, note: str) -> None:
        await self._release(lease, {"step": JobStep.DONE.value}, "upstream_cancel", {"note": note})

    async def calling(self, lease: Lease, job: JobRow, *, resubmitting: bool = False) -> None:
        """Record a paid submit call in flight before making it; ``resubmitting`` also counts
        the interrupted call this one replaces (see ``queue.runner``)."""
        now = self._now()
        if self._db.is_postgres and not resubmitting:
            # A first call's mark is one fenced update: the marks of the jobs about to call at
            # once are written together, one statement and one commit (``claims.mark_calls``).
            mark = claims.CallMark(lease.job_id, lease.token, now)
            if not await self._db.write_each(claims.mark_calls, mark, alone=True):
                raise LeaseLost(lease.job_id)
            return
        values: dict[str, Any] = {"call_started_at": now, "updated_at": now}
        if resubmitting:
            values["interrupted_calls"] = job.interrupted_calls + 1

        async def body(conn: AsyncConnection) -> None:
            if not await claims.fenced_update(conn, lease.job_id, lease.token, values):
                raise LeaseLost(lease.job_id)
            if resubmitting:
                await job_store.add_event(
                    conn, job.id, "interrupted_call", now, {"resubmitted": True}
                )

        # A first call's mark is the fenced update alone: a transaction of one statement.
        write = self._db.write if resubmitting else self._db.write_alone
        await write(body)

    async def release(self, lease: Lease) -> None:
        """Give the job back untouched (shutdown)."""
        async with self._db.transaction() as conn:
            await claims.release(conn, lease.job_id, lease.token)
