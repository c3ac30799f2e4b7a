"""Sending webhooks: signed, retried for about three days, every attempt recorded.

Delivery rows are written in the same transaction as the job change they announce (see
``store.webhooks``), so a finished job's webhook is never lost. The sender leases due rows like
the job worker leases jobs, builds the payload (``imagegate.presenters``) from the job as it is at
that moment, with freshly signed result URLs, signs it both ways and POSTs it through the
outbound guard (every attempt re-resolves and re-checks the target; redirects are not followed).

Outcome of an attempt:

- any 2xx within ``TIMEOUT_SECONDS`` (the whole exchange, not each read) → ``delivered``; the
  response body is never read, so a receiver cannot make the sender download anything;
- 410 Gone → ``failed`` at once, no more retries;
- anything else (other statuses, timeouts, refused or blocked connections) → retried after the
  next delay of ``SCHEDULE`` (±10 % jitter, never sooner than the receiver's ``Retry-After``),
  until the schedule is exhausted → ``failed``.

The job's ``webhookStatus`` follows its ``completed``/``failed`` delivery: ``pending`` →
``delivered`` | ``failed``; ``progress`` deliveries never change it. A ``progress`` payload
announces the progress recorded with its event, not the job's current one, so a late retry
never claims a progress the job had at another moment.

``run`` sends as soon as a delivery is queued in this process (``woken_by``, a subscription to
``JobSignals.watch_deliveries``) and polls every ``poll_interval`` for the rest: deliveries queued
by other processes, retries whose time came, leases that expired.

``run`` outlives database and storage outages: a round that cannot reach them is retried with
back-off, and its ``Outage`` logs the start and the end once. Its leased rows simply expire and
are attempted again after the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx2
import structlog

from imagegate.errors import ServiceUnavailable
from imagegate.net.guard import BlockedUrl, OutboundPolicy, Resolver, guarded_client
from imagegate.net.retry_after import retry_after_seconds
from imagegate.observability.metrics import Metrics
from imagegate.presenters import SignedJob, output_keys, webhook_body
from imagegate.storage.port import ObjectStore
from imagegate.store import accounts as account_store
from imagegate.store import jobs as job_store
from imagegate.store import webhooks as store
from imagegate.store.db import Database
from imagegate.store.webhooks import DeliveryRow
from imagegate.supervisor import Outage
from imagegate.types import Clock, WebhookEvent, WebhookStatus
from imagegate.webhooks.signing import webhook_headers

__all__ = ["SCHEDULE", "WebhookSender"]

log = structlog.get_logger("imagegate.webhooks")

SCHEDULE: tuple[int, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
"""Seconds before each attempt, after the previous one (Standard Webhooks' example: ~3 days)."""

TIMEOUT_SECONDS = 15.0
"""A receiver must answer within this many seconds, connection included."""


class WebhookSender:
    """Leases due deliveries and attempts each once per lease; close it with ``aclose``.

    ``store`` signs the result URLs a payload carries, valid ``url_ttl_seconds`` from the
    attempt. ``resolver`` is the guard's DNS seam (tests answer from a table to rebind a name
    between attempts); by default the system resolver is asked on every attempt. ``timeout``
    bounds each whole attempt (``TIMEOUT_SECONDS`` unless a test needs a receiver to be slow
    sooner). ``woken_by`` opens a subscription whose event is set whenever this process queues
    a delivery (``JobSignals.watch_deliveries``); without it the sender only polls.
    """

    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        store: ObjectStore,
        url_ttl_seconds: int,
        policy: OutboundPolicy,
        metrics: Metrics | None = None,
        concurrency: int = 8,
        lease_seconds: float = 60.0,
        poll_interval: float = 1.0,
        rng: random.Random | None = None,
        resolver: Resolver | None = None,
        timeout: float = TIMEOUT_SECONDS,
        outage: Outage | None = None,
        woken_by: Callable[[], contextlib.AbstractContextManager[asyncio.Event]] | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._store = store
        self._url_ttl = url_ttl_seconds
        self._metrics = metrics or Metrics()
        self._timeout = timeout
        self._client = guarded_client(policy, timeout=timeout, resolver=resolver)
        self._concurrency = concurrency
        self._lease_ms = int(lease_seconds * 1000)
        self._poll_interval = poll_interval
        self._rng = rng or random.Random()
        self._stopping = asyncio.Event()
        self.owner = f"webhooks:{uuid.uuid4().hex[:8]}"
        self._outage = outage or Outage("webhooks", initial=poll_interval)
        self._woken_by = woken_by

    async def aclose(self) -> None:
        await self._client.aclose()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Send due deliveries until ``stop()``, riding out database and storage outages."""
        with self._woken_by() if self._woken_by else contextlib.nullcontext() as queued:
            while not self._stopping.is_set():
                if queued is not None:
                    queued.clear()  # a delivery queued from here on cuts the next pause short
                wake = queued
                wait = self._poll_interval
                try:
                    sent = await self.drain_once()
                    self._outage.recovered()
                except (ServiceUnavailable, OSError) as exc:
                    sent = 0
                    wait = self._outage.failed(exc)
                    wake = None  # during an outage only the back-off decides
                if not sent:
                    await self._pause(wait, wake)

    async def _pause(self, seconds: float, queued: asyncio.Event | None) -> None:
        """Until ``stop()``, a queued delivery (when ``queued`` is given) or ``seconds`` pass."""
        waits = [asyncio.ensure_future(self._stopping.wait())]
        if queued is not None:
            waits.append(asyncio.ensure_future(queued.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def drain_once(self) -> int:
        """Attempt every due delivery once (up to ``concurrency`` at a time); how many."""
        async with self._db.transaction() as conn:
            rows = await store.claim_deliveries(
                conn,
                owner=self.owner,
                token=str(uuid.uuid4()),
                now=self._clock.now_ms(),
                lease_ms=self._lease_ms,
                limit=self._concurrency,
            )
        await asyncio.gather(*(self.attempt(row) for row in rows))
        return len(rows)

    async def drain(self, max_rounds: int = 100) -> int:
        total = 0
        for _ in range(max_rounds):
            sent = await self.drain_once()
            if not sent:
                break
            total += sent
        return total

    async def attempt(self, row: DeliveryRow) -> None:
        with (
            structlog.contextvars.bound_contextvars(job_id=row.job_id, delivery_id=row.id),
            self._metrics.tracing.span("webhook.deliver", row.job_id, event=row.event),
        ):
            await self._attempt(row)

    async def _attempt(self, row: DeliveryRow) -> None:
        assert row.lease_token is not None
        async with self._db.read() as conn:
            job = await job_store.get_job(conn, row.job_id)
            account = await account_store.get_account(conn, row.account_id)
            key_hash = await account_store.key_hash_of(conn, job.api_key_id) if job else None
            progress = (
                await store.progress_at(conn, row.job_id, row.created_at)
                if row.event == WebhookEvent.PROGRESS
                else None
            )
        if job is None or account is None:
            # Without the job there is nothing to announce; settle so the row stops being leased.
            await self._settle(row, None, "the job no longer exists", None, 0, final=True)
            return
        urls = {key: await self._store.url(key, self._url_ttl) for key in output_keys(job)}
        payload = webhook_body(row.event, SignedJob(job, urls), progress=progress)
        body = json.dumps(payload, separators=(",", ":")).encode()
        timestamp = self._clock.now_ms() // 1000
        secrets = [s for s in (account.webhook_secret, account.webhook_secret_previous) if s]
        headers = webhook_headers(
            event=row.event,
            msg_id=row.id,
            timestamp=timestamp,
            body=body,
            secrets=secrets,
            api_key_sha256_digest=bytes.fromhex(key_hash) if key_hash else None,
        )
        headers["User-Agent"] = "imagegate-webhooks"
        status_code: int | None = None
        error: str | None = None
        advised: float | None = None
        started = time.monotonic()
        try:
            async with (
                asyncio.timeout(self._timeout),
                self._client.stream("POST", row.url, content=body, headers=headers) as response,
            ):
                status_code = response.status_code
                advised = retry_after_seconds(response.headers)
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except BlockedUrl as exc:
            error = f"blocked: {exc}"
        except (TimeoutError, httpx2.TimeoutException):
            status_code = None
            error = f"no answer within {self._timeout:g} s"
        except httpx2.TransportError as exc:
            error = f"connection failed: {exc!r}"
        latency_ms = int((time.monotonic() - started) * 1000)
        await self._settle(row, status_code, error, advised, latency_ms)

    async def _settle(
        self,
        row: DeliveryRow,
        status_code: int | None,
        error: str | None,
        advised: float | None,
        latency_ms: int,
        *,
        final: bool = False,
    ) -> None:
        assert row.lease_token is not None
        now = self._clock.now_ms()
        attempts = row.attempts + 1
        next_at: int | None = None
        if error is None:
            status = WebhookStatus.DELIVERED
        elif final or status_code == 410 or attempts >= len(SCHEDULE):
            status = WebhookStatus.FAILED
        else:
            status = WebhookStatus.PENDING
            delay = SCHEDULE[attempts] * self._rng.uniform(0.9, 1.1)
            next_at = now + int(max(delay, advised or 0.0) * 1000)
        values: dict[str, Any] = {
            "status": status.value,
            "attempts": attempts,
            "last_status_code": status_code,
            "last_error": error,
            "last_attempt_at": now,
            "delivered_at": now if status is WebhookStatus.DELIVERED else None,
        }
        if next_at is not None:
            values["run_at"] = next_at
        async with self._db.transaction() as conn:
            if not await store.settle_delivery(conn, row.id, row.lease_token, values):
                return
            await store.record_attempt(
                conn,
                {
                    "delivery_id": row.id,
                    "job_id": row.job_id,
                    "attempted_at": now,
                    "status_code": status_code,
                    "latency_ms": latency_ms,
                    "error": error,
                    "next_attempt_at": next_at,
                },
            )
            if row.event != WebhookEvent.PROGRESS and status is not WebhookStatus.PENDING:
                await job_store.set_webhook_status(conn, row.job_id, status)
        self._metrics.webhook_attempts.labels(status.value).inc()
        log.info(
            "webhook.attempt",
            delivery_id=row.id,
            job_id=row.job_id,
            webhook_event=row.event,
            status=status.value,
            status_code=status_code,
            error=error,
        )
