"""Provider gates: concurrency caps, rate limits, 429 cool-downs and a circuit breaker.

Every call upstream (a submit or a poll) passes a provider's gate. The state lives in the
database (``store.providers``), so the limits hold across every worker process:

- **concurrency cap** — at most ``max_concurrency`` calls in flight per provider; a call holds a
  slot row, released when it returns (or abandoned after ``timeout`` + a margin if the worker
  dies mid-call);
- **rate limit** — at most ``rate_per_minute`` calls per provider in a fixed one-minute window;
- **cool-down** — a 429 stops calls to that provider for its ``Retry-After`` (5 s without
  one); the jobs that wait spend no attempt;
- **circuit breaker** — ``circuit_failures`` retryable failures in a row open the circuit for
  ``circuit_open_seconds``; after that one call is let through, and a success closes it again
  (a failure re-opens it at once).

A gate that cannot let a call through raises ``ProviderBusy``: the job is put back for later
without counting an attempt. The router (``queue.router``) consults ``usable`` to skip a provider
whose circuit is open or whose cool-down is longer than ``failover_after_seconds`` when another
route exists.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from imagegate.errors import UpstreamMisconfigured, UpstreamRateLimited, UpstreamRetryable
from imagegate.providers.pool import SANDBOX
from imagegate.settings import Settings
from imagegate.store import providers as store
from imagegate.store.db import Database
from imagegate.types import Clock

__all__ = ["DEFAULT_COOLDOWN_SECONDS", "ProviderBusy", "ProviderGates"]

SLOT_MARGIN_MS = 30_000
BUSY_RETRY_SECONDS = 1.0
DEFAULT_COOLDOWN_SECONDS = 5.0
"""How long a 429 without ``Retry-After`` keeps calls away from the provider."""


class ProviderBusy(Exception):
    """The provider cannot take a call now; try the job again after ``retry_after`` seconds."""

    def __init__(self, provider: str, reason: str, retry_after: float) -> None:
        super().__init__(f"{provider}: {reason}")
        self.provider = provider
        self.reason = reason
        self.retry_after = retry_after


class ProviderGates:
    def __init__(self, db: Database, clock: Clock, settings: Settings) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings
        self._holder = uuid.uuid4().hex
        self._known: set[str] = set()

    async def _ensure(self, provider: str) -> None:
        if provider in self._known:
            return
        cap = self._settings.provider(provider).max_concurrency
        async with self._db.transaction() as conn:
            await store.ensure_provider(conn, provider, cap)
        self._known.add(provider)

    async def usable(self, provider: str) -> bool:
        """False while the circuit is open or a cool-down runs past the fail-over budget."""
        if provider == SANDBOX:
            return True
        now = self._clock.now_ms()
        async with self._db.read() as conn:
            health = await store.get_health(conn, provider)
        budget_ms = int(self._settings.failover_after_seconds * 1000)
        return health.open_until <= now and health.cooldown_until <= now + budget_ms

    @asynccontextmanager
    async def call(self, provider: str) -> AsyncIterator[None]:
        """Hold a slot for one upstream call and record how it went."""
        if provider == SANDBOX:
            yield
            return
        slot = await self._enter(provider)
        try:
            yield
        except UpstreamRetryable as exc:
            await self._leave(provider, slot, failure=exc)
            raise
        except UpstreamMisconfigured as exc:
            await self._leave(provider, slot, misconfigured=exc.message)
            raise
        except BaseException:
            await self._leave(provider, slot)
            raise
        else:
            await self._leave(provider, slot, success=True)

    async def _enter(self, provider: str) -> int:
        await self._ensure(provider)
        config = self._settings.provider(provider)
        now = self._clock.now_ms()
        async with self._db.transaction() as conn:
            health = await store.get_health(conn, provider)
            if health.cooldown_until > now:
                wait = (health.cooldown_until - now) / 1000
                raise ProviderBusy(provider, "cooling down after a rate limit", wait)
            if health.open_until > now:
                wait = (health.open_until - now) / 1000
                raise ProviderBusy(provider, "circuit open after repeated failures", wait)
            limit = config.rate_per_minute
            if limit is not None and not await store.count_call(conn, provider, now, limit):
                wait = max(health.window_start + store.WINDOW_MS - now, 0) / 1000
                raise ProviderBusy(provider, "rate limit reached", wait or BUSY_RETRY_SECONDS)
            hold_ms = int(config.timeout * 1000) + SLOT_MARGIN_MS
            slot = await store.take_slot(
                conn, provider, config.max_concurrency, self._holder, now, hold_ms
            )
            if slot is None:
                raise ProviderBusy(provider, "all concurrency slots busy", BUSY_RETRY_SECONDS)
            return slot

    async def _leave(
        self,
        provider: str,
        slot: int,
        *,
        success: bool = False,
        failure: UpstreamRetryable | None = None,
        misconfigured: str | None = None,
    ) -> None:
        now = self._clock.now_ms()
        async with self._db.transaction() as conn:
            await store.release_slot(conn, provider, slot, self._holder)
            if success:
                await store.record_success(conn, provider, now)
            elif misconfigured is not None:
                await store.record_misconfigured(conn, provider, now, misconfigured)
            elif isinstance(failure, UpstreamRateLimited):
                wait = failure.retry_after or DEFAULT_COOLDOWN_SECONDS
                await store.record_cooldown(conn, provider, now, now + int(wait * 1000))
            elif failure is not None:
                advised = failure.retry_after
                await store.record_failure(
                    conn,
                    provider,
                    now,
                    threshold=self._settings.circuit_failures,
                    open_ms=int(self._settings.circuit_open_seconds * 1000),
                    cooldown_until=now + int(advised * 1000) if advised else None,
                )

    async def report_misconfigured(self, provider: str, message: str) -> None:
        """Show a provider whose adapter could not even be built as misconfigured."""
        await self._ensure(provider)
        async with self._db.transaction() as conn:
            await store.record_misconfigured(conn, provider, self._clock.now_ms(), message)

    async def snapshot(self) -> list[store.Health]:
        async with self._db.read() as conn:
            return await store.list_health(conn)
