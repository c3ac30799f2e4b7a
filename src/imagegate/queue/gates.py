"""Provider gates: concurrency caps, rate limits, 429 cool-downs and a circuit breaker.

Every call upstream (a submit or a poll) passes a provider's gate. The state is shared by every
worker process: in the database (``DatabaseGateState``, the default) or, when ``redis_url`` is
set, in Redis (``queue.gates_redis``), which keeps these hot counters off the database:

- **concurrency cap** — at most ``max_concurrency`` calls in flight per provider; a call holds a
  lease (one row, or one Redis sorted-set member, per call in flight — never one per slot),
  released when it returns, or expiring after ``timeout`` + a margin if the worker dies
  mid-call;
- **rate limit** — at most ``rate_per_minute`` calls per provider in a fixed one-minute window;
- **cool-down** — a 429 stops calls to that provider for its ``Retry-After`` (5 s without
  one); the jobs that wait spend no attempt;
- **circuit breaker** — ``circuit_failures`` retryable failures in a row open the circuit for
  ``circuit_open_seconds``; after that one call is let through, and a success closes it again
  (a failure re-opens it at once).

A call that finds its provider at ``max_concurrency`` waits in-process for a lease, up to
``provider_wait_seconds``: woken at once when a call of this process returns, and trying again
about every second for leases freed by other processes (not while this process holds every lease
itself: none can be free, and asking would be a write for nothing). A call of this process that
returns well hands its lease straight to the call that has waited longest (no write to give it
back, none to take it again), while the lease is young enough to outlive the next call
(``HANDOVER_MS``) and the provider has no rate limit (each call must be counted in its window); the
lease row keeps the first call's job id. With no call waiting, the lease is kept for
``PARK_SECONDS`` for the next call of this process on the same terms, then given back. A waiting
job costs a coroutine, not a worker. A gate that cannot let a call through (cap still full after
the wait, rate limit, cool-down, open circuit) raises ``ProviderBusy``: the job is put back for
later without counting an attempt. The router (``queue.router``) consults ``usable`` to skip a
provider whose circuit is open or whose cool-down is longer than ``failover_after_seconds`` when
another route exists. A process reads a provider's health at most every ``HEALTH_TTL_SECONDS`` (its
own calls that change it forget the copy at once), not twice per call.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import random
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

import structlog

from imagegate.errors import (
    ServiceUnavailable,
    UpstreamMisconfigured,
    UpstreamRateLimited,
    UpstreamRetryable,
)
from imagegate.providers.pool import SANDBOX
from imagegate.settings import Settings
from imagegate.store import providers as store
from imagegate.store.db import Body, Database
from imagegate.store.providers import Health
from imagegate.types import Clock, Millis

T = TypeVar("T")

log = structlog.get_logger("imagegate.gates")

__all__ = [
    "DEFAULT_COOLDOWN_SECONDS",
    "Circuit",
    "DatabaseGateState",
    "GateState",
    "Outcome",
    "ProviderBusy",
    "ProviderGates",
]

LEASE_MARGIN_MS = 30_000
HANDOVER_MS = LEASE_MARGIN_MS // 2
"""How long after it was taken a lease may still be handed to a waiting call: it expires
``timeout`` + ``LEASE_MARGIN_MS`` after it was taken, so the next call (at most ``timeout``)
ends before it does."""
PARK_SECONDS = 0.05
"""How long a lease of a call that returned well, with no call of this process waiting, is kept
for this process's next call before it is given back: one call after another then takes no
lease and gives none back (two writes each), and a burst's leases go back in one write."""
BUSY_RETRY_SECONDS = 1.0
LEASE_RETRY_SECONDS = 1.0
"""How often a call waiting for a lease tries again when no call of this process returned."""
DEFAULT_COOLDOWN_SECONDS = 5.0
"""How long a 429 without ``Retry-After`` keeps calls away from the provider."""
HEALTH_TTL_SECONDS = 0.5
"""How long a process trusts the provider health it read. A call of this process that changes
it (a failure, a 429, a success after failures) forgets it at once; a change made by another
process is seen within this time."""


class ProviderBusy(Exception):
    """The provider cannot take a call now; try the job again after ``retry_after`` seconds."""

    def __init__(
        self, provider: str, reason: str, retry_after: float, *, at_cap: bool = False
    ) -> None:
        super().__init__(f"{provider}: {reason}")
        self.provider = provider
        self.reason = reason
        self.retry_after = retry_after
        self.at_cap = at_cap
        """Every lease is held: worth waiting a little for one to be released."""


@dataclass(frozen=True)
class Outcome:
    """What one upstream call did to its provider's health."""

    kind: Literal["none", "success", "failure", "cooldown", "misconfigured"]
    until: Millis = 0
    """The end of a cool-down (``cooldown``, or a ``failure`` that advised a wait)."""
    message: str | None = None
    """Why the provider is misconfigured."""


NO_OUTCOME = Outcome("none")
"""A call that ended before it could say anything of its provider (it was cancelled)."""


@dataclass(frozen=True)
class Circuit:
    failures: int
    """Retryable failures in a row that open the circuit."""
    open_ms: int
    """How long it stays open."""


class GateState(Protocol):
    """Where the shared provider state lives: the database or Redis."""

    async def health(self, provider: str) -> Health: ...

    async def acquire(
        self,
        provider: str,
        now: Millis,
        *,
        rate_limit: int | None,
        cap: int,
        hold_ms: int,
        job_id: str | None = None,
    ) -> str:
        """Count the call in the rate window and take a lease; raises ``ProviderBusy``."""

    async def release(
        self, provider: str, ticket: str, now: Millis, outcome: Outcome, *, circuit: Circuit
    ) -> None:
        """Give the slot back and record ``outcome``."""

    async def snapshot(self) -> list[Health]: ...

    async def aclose(self) -> None: ...


class ProviderGates:
    def __init__(self, state: GateState, clock: Clock, settings: Settings) -> None:
        self._state = state
        self._clock = clock
        self._settings = settings
        self._circuit = Circuit(
            failures=settings.circuit_failures,
            open_ms=int(settings.circuit_open_seconds * 1000),
        )
        self._waiting: dict[str, collections.deque[asyncio.Future[str | None]]] = {}
        """provider → calls of this process waiting for a lease, oldest first: each is given a
        lease handed over (its ticket), or None to try again when a lease was given back."""
        self._held: dict[str, dict[str, Millis]] = {}
        """provider → ticket → when it was taken, for each of this process's leases (in calls,
        parked) until given back (a lease handed over keeps its first time): while they number
        the provider's cap, no other lease can be free anywhere."""
        self._health: dict[str, tuple[float, Health]] = {}
        """provider → (monotonic time read, health): two reads per call otherwise."""
        self._health_reads: dict[str, asyncio.Task[Health]] = {}
        self._forgotten: dict[str, int] = {}
        self._releasing: set[asyncio.Task[None]] = set()
        """provider → how often this process changed its health (a read older is not kept)."""
        self._parked: dict[str, dict[str, asyncio.TimerHandle]] = {}
        """provider → leases of calls that returned well, kept for the next call (ticket → the
        timer that gives it back)."""

    async def _read_health(self, provider: str) -> Health:
        """The provider's health: the copy of this process when fresh, else one read shared by
        every caller that asks meanwhile."""
        now = time.monotonic()
        known = self._health.get(provider)
        if known is not None and now - known[0] < HEALTH_TTL_SECONDS:
            return known[1]
        reading = self._health_reads.get(provider)
        if reading is None:
            reading = asyncio.create_task(self._state.health(provider))
            self._health_reads[provider] = reading
            generation = self._forgotten.get(provider, 0)

            def keep(task: asyncio.Task[Health]) -> None:
                self._health_reads.pop(provider, None)
                if task.cancelled() or task.exception() is not None:
                    return
                if self._forgotten.get(provider, 0) == generation:  # no change meanwhile
                    self._health[provider] = (now, task.result())

            reading.add_done_callback(keep)
        return await asyncio.shield(reading)

    def _forget(self, provider: str) -> None:
        self._health.pop(provider, None)
        self._forgotten[provider] = self._forgotten.get(provider, 0) + 1

    async def usable(self, provider: str) -> bool:
        """False while the circuit is open or a cool-down runs past the fail-over budget."""
        if provider == SANDBOX:
            return True
        now = self._clock.now_ms()
        health = await self._read_health(provider)
        budget_ms = int(self._settings.failover_after_seconds * 1000)
        return health.open_until <= now and health.cooldown_until <= now + budget_ms

    @asynccontextmanager
    async def call(self, provider: str, job_id: str | None = None) -> AsyncIterator[None]:
        """Hold a lease for one upstream call (for ``job_id``) and record how it went."""
        if provider == SANDBOX:
            yield
            return
        ticket = await self._enter(provider, job_id)
        outcome = NO_OUTCOME
        try:
            yield
        except UpstreamRateLimited as exc:
            wait = exc.retry_after or DEFAULT_COOLDOWN_SECONDS
            outcome = Outcome("cooldown", until=self._clock.now_ms() + int(wait * 1000))
            raise
        except UpstreamRetryable as exc:
            advised = exc.retry_after
            until = self._clock.now_ms() + int(advised * 1000) if advised else 0
            outcome = Outcome("failure", until=until)
            raise
        except UpstreamMisconfigured as exc:
            outcome = Outcome("misconfigured", message=exc.message)
            raise
        else:
            outcome = Outcome("success")
        finally:
            forget = outcome.kind != "success" or self._known_unhealthy(provider)
            if forget:
                await self._release(provider, ticket, outcome, forget=True)
            elif self._hand_over(provider, ticket) or self._park(provider, ticket):
                pass
            else:
                # A success changes nothing this process relies on: the job goes on (to store
                # its images) while the lease is given back.
                task = asyncio.create_task(self._release(provider, ticket, outcome, forget=False))
                self._releasing.add(task)
                task.add_done_callback(self._releasing.discard)

    def _hand_over(self, provider: str, ticket: str) -> bool:
        """Give the lease of a call that returned well to the call waiting longest for one."""
        waiting = self._waiting.get(provider)
        if not waiting or not self._reusable(provider, ticket):
            return False
        while waiting:
            waiter = waiting.popleft()
            if not waiter.done():
                waiter.set_result(ticket)
                return True
        return False

    def _park(self, provider: str, ticket: str) -> bool:
        """Keep the lease of a call that returned well for this process's next call."""
        if not self._reusable(provider, ticket):
            return False
        timer = asyncio.get_running_loop().call_later(PARK_SECONDS, self._unpark, provider, ticket)
        self._parked.setdefault(provider, {})[ticket] = timer
        return True

    def _unpark(self, provider: str, ticket: str) -> None:
        """No call came for the parked lease in time: give it back."""
        if self._parked.get(provider, {}).pop(ticket, None) is not None:
            self._give_back_later(provider, ticket, Outcome("success"))

    def _take_parked(self, provider: str) -> str | None:
        """A parked lease still young enough for one more call, if any (older ones go back)."""
        parked = self._parked.get(provider)
        while parked:
            ticket, timer = parked.popitem()
            timer.cancel()
            if self._reusable(provider, ticket):
                return ticket
            self._give_back_later(provider, ticket, Outcome("success"))
        return None

    def _reusable(self, provider: str, ticket: str) -> bool:
        """Whether a lease may serve another call: young enough to outlive it (it expires
        ``timeout`` + ``LEASE_MARGIN_MS`` after it was taken), and no rate limit to count it in."""
        taken = self._held.get(provider, {}).get(ticket)
        if taken is None or self._clock.now_ms() - taken >= HANDOVER_MS:
            return False
        return self._settings.provider(provider).rate_per_minute is None

    def _wake_one(self, provider: str) -> None:
        """A lease was given back: the call waiting longest tries to take one."""
        waiting = self._waiting.get(provider)
        while waiting:
            waiter = waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _release(self, provider: str, ticket: str, outcome: Outcome, *, forget: bool) -> None:
        self._held.get(provider, {}).pop(ticket, None)
        try:
            await self._state.release(
                provider, ticket, self._clock.now_ms(), outcome, circuit=self._circuit
            )
        except ServiceUnavailable:
            # The call has been made (and perhaps paid for): its answer matters more than
            # the lease, which is abandoned after its hold time like a dead worker's.
            log.warning("gate.release_lost", provider=provider, outcome=outcome.kind)
        if forget:  # after the write, so no read in between caches the old health
            self._forget(provider)
        self._wake_one(provider)

    def _known_unhealthy(self, provider: str) -> bool:
        """Whether the health this process holds shows failures a success now clears."""
        known = self._health.get(provider)
        if known is None:
            return False
        health = known[1]
        return bool(health.failures or health.open_until or health.misconfigured)

    async def _enter(self, provider: str, job_id: str | None) -> str:
        """A lease for one call, waiting up to ``provider_wait_seconds`` while all are held."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._settings.provider_wait_seconds
        while True:
            try:
                ticket = await self._try_enter(provider, job_id)
                held = self._held.setdefault(provider, {})
                held.setdefault(ticket, self._clock.now_ms())  # a parked one keeps its time
                return ticket
            except ProviderBusy as busy:
                left = give_up - loop.time()
                if not busy.at_cap or left <= 0:
                    raise
            turn: asyncio.Future[str | None] = loop.create_future()
            self._waiting.setdefault(provider, collections.deque()).append(turn)
            wait = min(left, random.uniform(0.5, 1.5) * LEASE_RETRY_SECONDS)
            try:
                await asyncio.wait({turn}, timeout=wait)
            except asyncio.CancelledError:
                handed = turn.result() if turn.done() else None
                turn.cancel()
                if handed is not None:  # handed over to a call that is going away
                    self._give_back_later(provider, handed)
                raise
            if not turn.done():
                turn.cancel()
                continue
            handed = turn.result()
            if handed is not None:
                return handed

    def _give_back_later(self, provider: str, ticket: str, outcome: Outcome = NO_OUTCOME) -> None:
        task = asyncio.create_task(self._release(provider, ticket, outcome, forget=False))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _try_enter(self, provider: str, job_id: str | None) -> str:
        config = self._settings.provider(provider)
        now = self._clock.now_ms()
        health = await self._read_health(provider)
        if health.cooldown_until > now:
            wait = (health.cooldown_until - now) / 1000
            raise ProviderBusy(provider, "cooling down after a rate limit", wait)
        if health.open_until > now:
            wait = (health.open_until - now) / 1000
            raise ProviderBusy(provider, "circuit open after repeated failures", wait)
        parked = self._take_parked(provider)
        if parked is not None:
            return parked
        if len(self._held.get(provider, ())) >= config.max_concurrency:
            # Every lease is this process's: asking the database (or Redis) for one is a write
            # that cannot succeed. The call waits for one of ours, handed over or given back.
            raise ProviderBusy(
                provider, "all concurrency slots busy", BUSY_RETRY_SECONDS, at_cap=True
            )
        return await self._state.acquire(
            provider,
            now,
            rate_limit=config.rate_per_minute,
            cap=config.max_concurrency,
            hold_ms=int(config.timeout * 1000) + LEASE_MARGIN_MS,
            job_id=job_id,
        )

    async def snapshot(self) -> list[Health]:
        return await self._state.snapshot()

    async def aclose(self) -> None:
        for provider, parked in list(self._parked.items()):
            for ticket in list(parked):
                self._unpark(provider, ticket)
        if self._releasing:
            await asyncio.wait(set(self._releasing))
        await self._state.aclose()


@dataclass(frozen=True)
class _Take:
    ticket: str
    job_id: str | None
    expires_at: Millis
    cap: int
    now: Millis
    done: asyncio.Future[bool]


@dataclass(frozen=True)
class _Release:
    provider: str
    ticket: str
    now: Millis
    done: asyncio.Future[None]


class DatabaseGateState:
    """Provider state in the ``provider_health`` and ``provider_leases`` tables.

    Leases are taken and given back in batches: each caller queues its request and waits; one
    transaction takes every lease queued for a provider (as many as its cap leaves room for,
    first come first served), or gives back every lease of a call that succeeded and records the
    providers' success, while the next callers queue for the following one. Under load that is
    one write for many calls instead of one each. (A provider with ``rate_per_minute`` takes its
    leases one by one, each counted in the rate window.)
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._holder = uuid.uuid4().hex
        self._known: set[str] = set()
        self._ensuring: dict[str, asyncio.Lock] = {}
        self._releases: list[_Release] = []
        self._releaser: asyncio.Task[None] | None = None
        self._takes: dict[str, list[_Take]] = {}
        self._takers: dict[str, asyncio.Task[None]] = {}
        self._orphans: set[asyncio.Task[None]] = set()

    async def _ensure(self, provider: str) -> None:
        """The provider's health row exists (made once per process, by the first caller)."""
        if provider in self._known:
            return
        lock = self._ensuring.setdefault(provider, asyncio.Lock())
        async with lock:
            if provider in self._known:
                return
            async with self._db.transaction() as conn:
                await store.ensure_provider(conn, provider)
            self._known.add(provider)

    async def _write_one(self, body: Body[T]) -> T:
        """A batch's take or give-back: one statement on PostgreSQL (see ``store.take_leases``
        and ``store.release_succeeded``), which commits by itself there."""
        if self._db.is_postgres:
            return await self._db.write_alone(body)
        return await self._db.write(body)

    async def health(self, provider: str) -> Health:
        return await self._db.read_with(functools.partial(store.get_health, provider=provider))

    async def acquire(
        self,
        provider: str,
        now: Millis,
        *,
        rate_limit: int | None,
        cap: int,
        hold_ms: int,
        job_id: str | None = None,
    ) -> str:
        await self._ensure(provider)
        if rate_limit is None:
            return await self._queue_take(provider, now, cap=cap, hold_ms=hold_ms, job_id=job_id)
        ticket = uuid.uuid4().hex
        async with self._db.transaction() as conn:
            if rate_limit is not None and not await store.count_call(
                conn, provider, now, rate_limit
            ):
                health = await store.get_health(conn, provider)
                wait = max(health.window_start + store.WINDOW_MS - now, 0) / 1000
                raise ProviderBusy(provider, "rate limit reached", wait or BUSY_RETRY_SECONDS)
            taken = await store.take_lease(
                conn,
                provider,
                cap=cap,
                ticket=ticket,
                owner=self._holder,
                job_id=job_id,
                now=now,
                hold_ms=hold_ms,
            )
            if not taken:
                raise ProviderBusy(
                    provider, "all concurrency slots busy", BUSY_RETRY_SECONDS, at_cap=True
                )
            return ticket

    async def _queue_take(
        self, provider: str, now: Millis, *, cap: int, hold_ms: int, job_id: str | None
    ) -> str:
        loop = asyncio.get_running_loop()
        take = _Take(uuid.uuid4().hex, job_id, now + hold_ms, cap, now, loop.create_future())
        self._takes.setdefault(provider, []).append(take)
        taker = self._takers.get(provider)
        if taker is None or taker.done():
            self._takers[provider] = asyncio.create_task(
                self._take_queued(provider), name=f"gate-take-{provider}"
            )
        try:
            taken = await asyncio.shield(take.done)
        except asyncio.CancelledError:
            take.done.add_done_callback(lambda done: self._give_back(take.ticket, done))
            raise
        if not taken:
            raise ProviderBusy(
                provider, "all concurrency slots busy", BUSY_RETRY_SECONDS, at_cap=True
            )
        return take.ticket

    def _give_back(self, ticket: str, done: asyncio.Future[bool]) -> None:
        """A lease taken for a caller that went away meanwhile: delete it."""
        if done.cancelled() or done.exception() is not None or not done.result():
            return

        async def drop() -> None:
            with contextlib.suppress(ServiceUnavailable):
                async with self._db.transaction() as conn:
                    await store.release_lease(conn, ticket, self._holder)

        task = asyncio.create_task(drop())
        self._orphans.add(task)
        task.add_done_callback(self._orphans.discard)

    async def _take_queued(self, provider: str) -> None:
        """Take every queued lease of ``provider`` that fits its cap, one transaction per round."""
        while self._takes.get(provider):
            batch = self._takes.pop(provider)
            error: Exception | None = None
            taken: set[str] = set()
            try:
                taken = set(
                    await self._write_one(
                        functools.partial(
                            store.take_leases,
                            provider=provider,
                            cap=batch[-1].cap,
                            owner=self._holder,
                            now=max(t.now for t in batch),
                            leases=[(t.ticket, t.job_id, t.expires_at) for t in batch],
                        )
                    )
                )
            except Exception as exc:
                error = exc
            except BaseException:  # cancelled: nothing was taken
                error = ServiceUnavailable()
                raise
            finally:
                for take in batch:
                    if take.done.done():
                        continue
                    if error is None:
                        take.done.set_result(take.ticket in taken)
                    else:
                        take.done.set_exception(error)
                        take.done.exception()  # retrieved: a caller that left needs none

    async def release(
        self, provider: str, ticket: str, now: Millis, outcome: Outcome, *, circuit: Circuit
    ) -> None:
        if outcome.kind == "success":
            done = asyncio.get_running_loop().create_future()
            self._releases.append(_Release(provider, ticket, now, done))
            if self._releaser is None or self._releaser.done():
                self._releaser = asyncio.create_task(self._release_queued(), name="gate-release")
            await asyncio.shield(done)
            return
        async with self._db.transaction() as conn:
            await store.release_lease(conn, ticket, self._holder)
            if outcome.kind == "misconfigured":
                await store.record_misconfigured(conn, provider, now, outcome.message or "")
            elif outcome.kind == "cooldown":
                await store.record_cooldown(conn, provider, now, outcome.until)
            elif outcome.kind == "failure":
                await store.record_failure(
                    conn,
                    provider,
                    now,
                    threshold=circuit.failures,
                    open_ms=circuit.open_ms,
                    cooldown_until=outcome.until or None,
                )

    async def _release_queued(self) -> None:
        """Give back every queued lease of a successful call, one transaction per round."""
        while self._releases:
            batch, self._releases = self._releases, []
            error: Exception | None = None
            latest: dict[str, Millis] = {}
            for r in batch:
                latest[r.provider] = max(latest.get(r.provider, 0), r.now)
            body = functools.partial(
                store.release_succeeded,
                tickets=[r.ticket for r in batch],
                owner=self._holder,
                latest=latest,
            )
            try:
                await self._write_one(body)
            except Exception as exc:
                error = exc
            except BaseException:  # cancelled: the leases expire after their hold time
                error = ServiceUnavailable()
                raise
            finally:
                for release in batch:
                    if release.done.done():
                        continue
                    if error is None:
                        release.done.set_result(None)
                    else:
                        release.done.set_exception(error)
                        release.done.exception()  # retrieved: a caller that left needs none

    async def snapshot(self) -> list[Health]:
        async with self._db.read() as conn:
            return await store.list_health(conn)

    async def aclose(self) -> None:
        pending = {*self._takers.values(), *self._orphans}
        if self._releaser is not None:
            pending.add(self._releaser)
        pending = {task for task in pending if not task.done()}
        if pending:
            await asyncio.wait(pending)
