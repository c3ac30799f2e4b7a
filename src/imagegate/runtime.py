"""The composition root: ``build_runtime(settings)`` wires every component once.

Nothing is created at import time. The CLI builds one runtime per process; tests build one per
test with their own settings, clock, transports or adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagegate.catalog import Catalog, build_catalog
from imagegate.errors import ValidationFailed
from imagegate.net.guard import BlockedUrl, OutboundPolicy, check_target
from imagegate.net.images import make_input_fetcher
from imagegate.observability.metrics import Metrics
from imagegate.observability.tracing import JobTracing
from imagegate.providers.pool import ProviderPool
from imagegate.providers.port import ProviderAdapter, ProviderContext
from imagegate.queue.events import JobSignals
from imagegate.queue.gates import DatabaseGateState, GateState, ProviderGates
from imagegate.queue.gates_redis import RedisGateState
from imagegate.queue.ingest import OutputIngest
from imagegate.queue.router import Router
from imagegate.queue.runner import JobRunner
from imagegate.queue.transitions import JobTransitions
from imagegate.queue.wakeup import PostgresListener, Wakeup
from imagegate.queue.worker import Worker
from imagegate.services.accounts import KeyCache
from imagegate.services.actions import ActionSubmitter
from imagegate.services.direct_jobs import DirectJobs
from imagegate.services.jobs import JobService
from imagegate.services.limits import RequestLimiter
from imagegate.services.retention import Sweeper
from imagegate.services.submit import Submitter
from imagegate.services.uploads import UploadService
from imagegate.services.webhooks import WebhookLog
from imagegate.settings import Settings
from imagegate.storage.factory import create_object_store
from imagegate.storage.inputs import reading_own_files
from imagegate.storage.port import ObjectStore
from imagegate.storage.signing import UrlSigner
from imagegate.store.db import Database
from imagegate.supervisor import LoopHealth, LoopsFailed, Outage, Supervisor
from imagegate.types import Clock, SystemClock
from imagegate.webhooks.delivery import WebhookSender

__all__ = ["Background", "LoopsFailed", "Runtime", "build_runtime", "load_signing_secret"]


def load_signing_secret(settings: Settings) -> bytes:
    """The URL-signing secret: from settings, else ``<data_dir>/signing.key`` (made once, 0600).

    Several gateway nodes must share it: set ``IMAGEGATE_SIGNING_SECRET`` on all of them.
    """
    if settings.signing_secret is not None:
        return settings.signing_secret.get_secret_value().encode()
    path = Path(settings.data_dir) / "signing.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    db: Database
    catalog: Catalog
    store: ObjectStore
    signer: UrlSigner
    wakeup: Wakeup
    signals: JobSignals
    policy: OutboundPolicy
    providers: ProviderPool
    gates: ProviderGates
    router: Router
    ingest: OutputIngest
    transitions: JobTransitions
    runner: JobRunner
    submitter: Submitter
    actions: ActionSubmitter
    jobs: JobService
    webhooks: WebhookLog
    uploads: UploadService
    metrics: Metrics
    signing_secret: bytes
    limiter: RequestLimiter
    keys: KeyCache
    loops: LoopHealth = field(default_factory=LoopHealth)
    """The health of this process's background loops (``/readyz`` reads it)."""
    local_worker: Worker | None = None
    """This process's job worker, when it runs one (``Background``): the ``/v1`` calls run
    their jobs under its leases, in the request's own task (``Worker.run_claimed``)."""
    _listener: PostgresListener | None = field(default=None, repr=False)

    def outage(self, loop: str) -> Outage:
        """A loop's outage tracker, reporting into ``loops``."""
        s = self.settings
        return Outage(
            loop,
            health=self.loops,
            initial=s.outage_backoff_seconds,
            cap=s.outage_backoff_cap_seconds,
        )

    def worker(self, concurrency: int | None = None, owner: str | None = None) -> Worker:
        s = self.settings
        return Worker(
            db=self.db,
            runner=self.runner,
            wakeup=self.wakeup,
            clock=self.clock,
            concurrency=concurrency or s.in_flight_limit,
            lease_seconds=s.lease_seconds,
            poll_interval=s.poll_interval_seconds,
            grace_seconds=s.shutdown_grace_seconds,
            owner=owner,
            outage=self.outage("worker"),
        )

    def direct_jobs(self) -> DirectJobs:
        """Submit-and-wait for a request that answers with its finished job: run in the
        request's task under ``local_worker``'s lease when this process has one."""
        return DirectJobs(jobs=self.jobs, metrics=self.metrics, worker=self.local_worker)

    def webhook_sender(self) -> WebhookSender:
        return WebhookSender(
            db=self.db,
            clock=self.clock,
            store=self.store,
            url_ttl_seconds=self.settings.result_url_ttl_seconds,
            policy=self.policy,
            metrics=self.metrics,
            poll_interval=self.settings.poll_interval_seconds,
            outage=self.outage("webhooks"),
            woken_by=self.signals.watch_deliveries,
        )

    def sweeper(self) -> Sweeper:
        return Sweeper(
            db=self.db,
            clock=self.clock,
            store=self.store,
            interval=self.settings.sweep_interval_seconds,
            outage=self.outage("retention"),
        )

    def listen(self) -> None:
        """Wake this process's workers on PostgreSQL NOTIFY from other processes."""
        if self.db.is_postgres and self._listener is None:
            self._listener = PostgresListener(self.settings.database_url, self.wakeup)
            self._listener.start()

    async def aclose(self) -> None:
        if self._listener is not None:
            await self._listener.stop()
        await self.signals.aclose()
        await self.providers.aclose()
        await self.gates.aclose()
        await self.limiter.aclose()
        await self.ingest.aclose()
        with contextlib.suppress(Exception):
            await asyncio.shield(self.db.dispose())


class Background:
    """A process's job worker, webhook sender and retention sweeper, each kept alive by one
    ``Supervisor`` until ``stop()``; ``wait()`` raises ``LoopsFailed`` when one cannot be."""

    def __init__(self, runtime: Runtime, concurrency: int | None = None) -> None:
        runtime.listen()
        s = runtime.settings
        self.worker = runtime.worker(concurrency=concurrency)
        runtime.local_worker = self.worker
        self.sender = runtime.webhook_sender()
        self.sweeper = runtime.sweeper()
        self.supervisor = Supervisor(
            runtime.loops,
            budget=s.loop_restart_budget,
            window_seconds=s.loop_restart_window_seconds,
            backoff_seconds=s.loop_restart_backoff_seconds,
        )
        self.supervisor.start("worker", self.worker.run)
        self.supervisor.start("webhooks", self.sender.run)
        self.supervisor.start("retention", self.sweeper.run)

    def stop_soon(self) -> None:
        self.worker.stop()
        self.sender.stop()
        self.sweeper.stop()

    async def stop(self) -> None:
        self.stop_soon()
        await self.supervisor.join()
        await self.sender.aclose()

    async def wait(self) -> None:
        """Until the loops are stopped; ``LoopsFailed`` (after stopping the rest) when one of
        them exhausted its restart budget."""
        try:
            await self.supervisor.wait()
        except LoopsFailed:
            self.stop_soon()
            await self.supervisor.join()
            raise
        finally:
            await self.sender.aclose()


def build_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    transport: Any = None,
    adapters: Mapping[str, ProviderAdapter] | None = None,
    store: ObjectStore | None = None,
    tracing: JobTracing | None = None,
    busy_puts_in_place: bool = False,
) -> Runtime:
    """Wire a runtime: the shared parts, the worker's parts, then the use-cases, each built once.

    ``clock``, ``transport`` (an httpx2 transport), ``adapters``, ``store`` and ``tracing`` are
    test seams. ``busy_puts_in_place``: a worker process's (``create_object_store``).
    """
    clock = clock or SystemClock()
    secret = load_signing_secret(settings)
    db = Database(settings.database_url)
    catalog = build_catalog(settings.prices)
    previous = settings.signing_secret_previous
    signer = UrlSigner(
        secret,
        settings.public_base_url,
        clock,
        previous=previous.get_secret_value().encode() if previous else None,
    )
    store = store or create_object_store(settings, signer, busy_puts_in_place=busy_puts_in_place)
    wakeup = Wakeup()
    signals = JobSignals(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        redis_prefix=settings.redis_prefix,
        poll_seconds=settings.events_poll_seconds,
    )
    metrics = Metrics()
    metrics.tracing = tracing or JobTracing.from_settings(settings.tracing)
    policy = _outbound_policy(settings)
    context = _provider_context(settings, policy, store, signer, clock, transport)
    providers = ProviderPool(settings, context, adapters)
    gates = ProviderGates(_gate_state(settings, db), clock, settings)
    router = _router(settings, catalog, providers, gates)
    ingest = OutputIngest(store, max_bytes=settings.output_max_bytes, transport=transport)
    transitions = JobTransitions(db, clock, settings, metrics, signals)
    check_webhook_url = _webhook_url_check(policy)
    jobs = JobService(
        db=db,
        clock=clock,
        store=store,
        wakeup=wakeup,
        url_ttl_seconds=settings.result_url_ttl_seconds,
        signals=signals,
    )
    return Runtime(
        settings=settings,
        clock=clock,
        db=db,
        catalog=catalog,
        store=store,
        signer=signer,
        wakeup=wakeup,
        signals=signals,
        policy=policy,
        providers=providers,
        gates=gates,
        router=router,
        ingest=ingest,
        transitions=transitions,
        runner=JobRunner(
            clock=clock,
            router=router,
            gates=gates,
            providers=providers,
            ingest=ingest,
            transitions=transitions,
            metrics=metrics,
            interrupted_calls=settings.interrupted_calls,
            cpu_slots=settings.workers,
            record_backoff_seconds=settings.outage_backoff_seconds,
            record_backoff_cap_seconds=settings.outage_backoff_cap_seconds,
        ),
        submitter=Submitter(
            db=db,
            clock=clock,
            catalog=catalog,
            router=router,
            wakeup=wakeup,
            settings=settings,
            metrics=metrics,
            check_webhook_url=check_webhook_url,
        ),
        actions=ActionSubmitter(
            db=db,
            clock=clock,
            providers=providers,
            wakeup=wakeup,
            settings=settings,
            metrics=metrics,
            check_webhook_url=check_webhook_url,
        ),
        jobs=jobs,
        webhooks=WebhookLog(db=db, clock=clock, jobs=jobs),
        uploads=UploadService(
            db=db,
            clock=clock,
            store=store,
            max_bytes=settings.upload_max_bytes,
            ttl_seconds=settings.upload_ttl_seconds,
        ),
        metrics=metrics,
        signing_secret=secret,
        limiter=RequestLimiter(settings),
        keys=KeyCache(db),
    )


def _outbound_policy(settings: Settings) -> OutboundPolicy:
    """The SSRF guard for every URL a user hands us (webhooks, input images)."""
    return OutboundPolicy(
        allow_http=settings.outbound_allow_http,
        allow_networks=tuple(settings.outbound_allow_networks),
    )


def _provider_context(
    settings: Settings,
    policy: OutboundPolicy,
    store: ObjectStore,
    signer: UrlSigner,
    clock: Clock,
    transport: Any,
) -> ProviderContext:
    """What every adapter gets: an input fetcher that reads our own URLs from storage and
    downloads others through the guard, the test transport, and the clock."""
    fetch = make_input_fetcher(policy, max_bytes=settings.upload_max_bytes)
    return ProviderContext(
        fetch_input=reading_own_files(fetch, store, signer, clock),
        transport=transport,
        clock=clock,
    )


def _gate_state(settings: Settings, db: Database) -> GateState:
    """Where the provider gates keep their shared counters: Redis when configured, else the DB."""
    if settings.redis_url:
        return RedisGateState(settings.redis_url, settings.redis_prefix)
    return DatabaseGateState(db)


def _router(
    settings: Settings, catalog: Catalog, providers: ProviderPool, gates: ProviderGates
) -> Router:
    return Router(
        catalog,
        providers,
        gates,
        settings.routes,
        allow_substitutes=settings.allow_substitutes,
        failover_after_seconds=settings.failover_after_seconds,
    )


def _webhook_url_check(policy: OutboundPolicy) -> Callable[[str], Awaitable[None]]:
    """A submit-time check of ``webhookUrl``: a blocked target is a 400 on that field."""

    async def check_webhook_url(url: str) -> None:
        try:
            await check_target(policy, url)
        except BlockedUrl as exc:
            raise ValidationFailed.field("webhookUrl", str(exc)) from None

    return check_webhook_url
