"""Submitting a job: validate, de-duplicate, reserve credits, enqueue — in one transaction.

The Idempotency-Key record, the credit reservation and the job row are written together, so a
client that retries after a timeout gets the same job back and is charged once. On PostgreSQL
the submits queued while one runs are written together, one statement that commits by itself
(``Database.write_each``, ``submit_jobs``), each with its own outcome and only its own writes
undone when refused; two with one key in a batch are a submit and its replay. Two concurrent
requests with one key in different transactions race on the key's primary key: the loser's
insert waits for the winner to commit, then finds its record (a replay); a submit run alone
(``submit_job``) fails on the key instead and runs again, finding it. On SQLite
``BEGIN IMMEDIATE`` serialises them outright. Anything that fails —
validation, 402, 403, 429 — writes nothing and charges nothing.

Admission (``admit``) is exact under concurrency on both engines: it locks the account row
before it counts the account's jobs and spend, so of N concurrent submits against a cap of M
exactly M get in, wherever the API processes run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy.exc
import uuid_utils
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.catalog import Catalog
from imagegate.catalog.registry import GenerateRequest
from imagegate.domain.idempotency import check_key, fingerprint
from imagegate.errors import (
    ConcurrentJobsLimit,
    DailySpendLimit,
    IdempotencyConflict,
    InsufficientCredits,
    RateLimited,
    ValidationFailed,
)
from imagegate.observability.metrics import Metrics
from imagegate.queue import claims
from imagegate.queue.router import Router
from imagegate.queue.wakeup import Wakeup, notify_in_transaction
from imagegate.queue.worker import Claim
from imagegate.services.accounts import Caller
from imagegate.settings import Settings
from imagegate.store import accounts
from imagegate.store import jobs as job_store
from imagegate.store.db import Database
from imagegate.store.jobs import JobRow, NewJob
from imagegate.types import Clock, JobStatus, Millis

DAY_MS = 86_400_000

__all__ = ["Accepted", "Submitter", "admit", "claim_key", "retry_key_race"]

UrlCheck = Callable[[str], Awaitable[None]]
"""Raises ``ValidationFailed`` when a webhook URL may not be called (the outbound guard)."""


@dataclass(frozen=True)
class Accepted:
    job_id: str
    status: JobStatus
    replayed: bool = False
    claimed: JobRow | None = None
    """The job as written already claimed, when the submit was given a ``Claim``."""


class Submitter:
    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        catalog: Catalog,
        router: Router,
        wakeup: Wakeup,
        settings: Settings,
        metrics: Metrics,
        check_webhook_url: UrlCheck | None = None,
    ) -> None:
        self._metrics = metrics
        self._db = db
        self._clock = clock
        self._catalog = catalog
        self._router = router
        self._wakeup = wakeup
        self._settings = settings
        self._check_webhook_url = check_webhook_url
        self._submitted: dict[str, Any] = {}
        """``jobs_submitted``'s child of each model id."""

    async def generate(
        self,
        caller: Caller,
        body: Any,
        idempotency_key: str | None,
        retention_days: str | None = None,
        *,
        claim: Claim | None = None,
    ) -> Accepted:
        """``POST /v2/images/generate``; with ``claim``, the job is written already claimed
        under it (``Accepted.claimed``) for its caller to run (``Worker.run_claimed``), a live
        job with its first paid call already recorded in flight (``claims.insert_claimed_job``)."""
        key = check_key(idempotency_key)
        retention = self._check_retention(retention_days)
        request = self._catalog.parse(body)
        caller.check_model(request.spec.id)
        if not caller.is_test and not self._router.available(request.spec):
            raise ValidationFailed.field("model", self._router.unavailable_reason(request.spec))
        if request.webhook_url and self._check_webhook_url is not None:
            await self._check_webhook_url(request.webhook_url)
        cost = 0 if caller.is_test else self._catalog.price(request.spec, request.params)
        # Only an Idempotency-Key is compared with its request (``claim_key``).
        request_print = "" if key is None else fingerprint("/v2/images/generate", body)
        return await retry_key_race(
            key, lambda: self._insert(caller, request, cost, key, request_print, retention, claim)
        )

    def _check_retention(self, header: str | None) -> int | None:
        """``X-Retention-Days``: keep this job's outputs for N days instead of the default."""
        if header is None:
            return None
        limit = self._settings.output_retention_max_days
        value = header.strip()
        if (
            not (value.isascii() and value.isdigit() and len(value) <= 9)
            or not 1 <= int(value) <= limit
        ):
            raise ValidationFailed.field(
                "X-Retention-Days", f"must be a whole number of days from 1 to {limit}"
            )
        return int(value)

    async def _insert(
        self,
        caller: Caller,
        request: GenerateRequest,
        cost: int,
        key: str | None,
        request_print: str,
        retention_days: int | None,
        claim: Claim | None,
    ) -> Accepted:
        now = self._clock.now_ms()
        job_id = str(uuid_utils.uuid7())
        spec = request.spec
        job = NewJob(
            id=job_id,
            account_id=caller.account_id,
            api_key_id=caller.key_id,
            model=spec.id,
            prompt=request.prompt,
            input=dict(request.body),
            params=request.params_dict,
            outputs_expected=spec.outputs(request.params),
            sandbox=caller.is_test,
            credit_cost=cost,
            webhook_url=request.webhook_url,
            webhook_events=list(request.webhook_events) if request.webhook_url else None,
            retention_days=retention_days,
            created_at=now,
            deadline_at=now + self._settings.job_deadline_seconds * 1000,
        )

        submit = job_store.PostgresSubmit(
            job=job,
            key=key,
            fingerprint=request_print,
            key_expires_at=now + self._settings.idempotency_ttl_hours * 3_600_000,
            max_queued=self._settings.max_queued_jobs_per_account,
            day_start=now - now % DAY_MS,
        )

        async def accept_alone(conn: AsyncConnection) -> Accepted:
            # A refusal raises here, inside the transaction, which rolls its writes back.
            return _accepted(await job_store.submit_postgres(conn, submit), cost, now)

        async def accept(conn: AsyncConnection) -> Accepted:
            replay = await claim_key(conn, self._settings, caller, key, request_print, job_id, now)
            if replay is not None:
                return replay
            claimed = None
            if claim is None:
                await job_store.insert_job(conn, job)
            else:
                # A live job's step begins with its paid call: it is recorded in flight here
                # rather than in a write of its own.
                claimed = await claims.insert_claimed_job(
                    conn,
                    job,
                    owner=claim.owner,
                    token=claim.token,
                    now=now,
                    lease_ms=claim.lease_ms,
                    calling=not caller.is_test,
                )
            await job_store.add_event(conn, job_id, "queued", now, {"cost": cost})
            if claim is None:
                await notify_in_transaction(conn)
            # Admitted last, so the account stays locked only from here to the commit.
            inserted = JobStatus.QUEUED if claimed is None else JobStatus.PROCESSING
            await admit(conn, self._settings, caller, job_id, cost, now, inserted=inserted)
            return Accepted(job_id, JobStatus.QUEUED, claimed=claimed)

        # The first span of the job's trace (``observability.tracing``): the workers' and the
        # webhook sender's spans join it through the job id alone.
        with self._metrics.tracing.span("job.accept", job_id, model=spec.id):
            if self._db.is_postgres and claim is None:
                # With the submits queued alongside, in one statement that commits by itself:
                # no COMMIT of its own, one round trip fewer per batch.
                submitted = await self._db.write_each(
                    job_store.submit_many_postgres, submit, alone=True
                )
                if submitted.outcome == "retry":  # it failed in the batch and wrote nothing
                    accepted = await self._db.write(accept_alone)
                else:
                    accepted = _accepted(submitted, cost, now)
            else:
                accepted = await self._db.write(accept)
        if accepted.replayed:
            return accepted
        if accepted.claimed is None:
            self._wakeup.notify()
        counter = self._submitted.get(spec.id)
        if counter is None:  # labels() takes a lock and builds the label tuple on every call
            counter = self._submitted[spec.id] = self._metrics.jobs_submitted.labels(spec.id)
        counter.inc()
        return accepted


async def retry_key_race(key: str | None, insert: Callable[[], Awaitable[Accepted]]) -> Accepted:
    """Run ``insert`` (one transaction); once more if it lost a race for the Idempotency-Key.

    The second run finds the winner's record and replays it.
    """
    for attempt in (1, 2):
        try:
            return await insert()
        except sqlalchemy.exc.IntegrityError:
            if attempt == 2 or key is None:
                raise
    raise AssertionError("unreachable")


async def claim_key(
    conn: AsyncConnection,
    settings: Settings,
    caller: Caller,
    key: str | None,
    request_print: str,
    job_id: str,
    now: Millis,
) -> Accepted | None:
    """The original job when ``key`` was used before with this request; else record the key.

    Raises ``IdempotencyConflict`` (409) when the key was used with another request. Returns
    None when the caller should go on and insert ``job_id``.
    """
    if key is None:
        return None
    existing = await job_store.claim_idempotency(
        conn,
        account_id=caller.account_id,
        key=key,
        fingerprint=request_print,
        job_id=job_id,
        now=now,
        expires_at=now + settings.idempotency_ttl_hours * 3_600_000,
    )
    if existing is None:
        return None
    if existing.fingerprint != request_print:
        raise IdempotencyConflict()
    original = await job_store.get_job(conn, existing.job_id)
    status = JobStatus(original.status) if original else JobStatus.QUEUED
    return Accepted(existing.job_id, status, replayed=True)


async def admit(
    conn: AsyncConnection,
    settings: Settings,
    caller: Caller,
    job_id: str,
    cost: int,
    now: Millis,
    *,
    model: str | None = None,
    inserted: JobStatus | None = None,
) -> None:
    """Let ``job_id`` in, or raise so that nothing is written or charged.

    In order: the key's allowed models (403), the queued-jobs cap, the account's concurrent-jobs
    cap, its daily spend cap (429 each), then the credit reservation (402). The caps are counted
    under the account row's lock: no other submit of the account can change the counts until
    this transaction commits, on any API process. ``inserted`` is the status the job row was
    inserted with when it is already in the transaction (and so in the counts): QUEUED, or
    PROCESSING for a job claimed where it is inserted; a caller that inserts it first, then
    admits, holds the lock for the shortest time.
    """
    if model is not None:
        caller.check_model(model)
    await _check_caps(conn, settings, caller, cost, now, own=inserted)
    if cost and await accounts.reserve(conn, caller.account_id, job_id, cost, now) is None:
        available = await accounts.balance(conn, caller.account_id)
        raise InsufficientCredits(required=cost, available=available)


async def _check_caps(
    conn: AsyncConnection,
    settings: Settings,
    caller: Caller,
    cost: int,
    now: Millis,
    *,
    own: JobStatus | None,
) -> None:
    """Raise when one more job of ``cost`` would pass a cap; ``own``: it is already counted,
    with this status."""
    account_id = caller.account_id
    account, unfinished = await accounts.lock_for_admission(conn, account_id)
    queued = unfinished.queued - (own is JobStatus.QUEUED)
    if queued >= settings.max_queued_jobs_per_account:
        raise _queued_cap(queued)
    if account is None:
        return
    if account.max_concurrent_jobs is not None:
        active = unfinished.queued + unfinished.processing - (own is not None)
        if active >= account.max_concurrent_jobs:
            raise _concurrent_cap(active, account.max_concurrent_jobs)
    if cost and account.max_daily_spend is not None:
        day_start = now - now % DAY_MS
        spent = await accounts.spent_since(conn, account_id, day_start)
        if own is not None:
            spent -= cost
        if spent + cost > account.max_daily_spend:
            raise _daily_cap(spent, account.max_daily_spend, cost, now)


def _accepted(submitted: job_store.Submitted, cost: int, now: Millis) -> Accepted:
    """The answer to a submit ``submit_job`` accepted or replayed; raises its refusal."""
    if submitted.outcome == "accepted":
        return Accepted(submitted.job_id, JobStatus.QUEUED)
    if submitted.outcome == "replayed":
        return Accepted(submitted.job_id, JobStatus(submitted.status), replayed=True)
    raise _refusal(submitted, cost, now)


def _refusal(submitted: job_store.Submitted, cost: int, now: Millis) -> Exception:
    """The error of a submit ``submit_job`` refused, as ``claim_key`` and ``admit`` raise it."""
    counted = submitted.counted or 0
    cap = submitted.cap or 0
    match submitted.outcome:
        case "conflict":
            return IdempotencyConflict()
        case "queued_cap":
            return _queued_cap(counted)
        case "concurrent_cap":
            return _concurrent_cap(counted, cap)
        case "daily_cap":
            return _daily_cap(counted, cap, cost, now)
        case "credits":
            return InsufficientCredits(required=cost, available=counted)
    raise AssertionError(f"unknown submit outcome {submitted.outcome!r}")


def _queued_cap(queued: int) -> RateLimited:
    return RateLimited(f"Too many queued jobs ({queued}); wait for some to start", retry_after=5)


def _concurrent_cap(active: int, cap: int) -> ConcurrentJobsLimit:
    return ConcurrentJobsLimit(
        f"Too many jobs in progress ({active} of {cap} allowed"
        " for this account); wait for some to finish",
        retry_after=5,
    )


def _daily_cap(spent: int, cap: int, cost: int, now: Millis) -> DailySpendLimit:
    day_start = now - now % DAY_MS
    return DailySpendLimit(
        f"Daily spending limit reached: {spent} of {cap} credits"
        f" spent today (UTC), this job costs {cost}",
        retry_after=max(1, -(-(day_start + DAY_MS - now) // 1000)),
    )
