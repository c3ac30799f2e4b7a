"""``serve``, ``worker`` and ``migrate``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
from collections.abc import Generator

import typer
import uvicorn
from prometheus_client import start_http_server
from rich.console import Console
from rich.panel import Panel

from imagegate.api.app import create_app
from imagegate.api.protocol import header_deadline_protocol
from imagegate.cli.config import checked_settings
from imagegate.observability.logging import LogPipeline, configure_logging
from imagegate.runtime import Background, LoopsFailed, build_runtime
from imagegate.services.bootstrap import bootstrap
from imagegate.settings import Settings
from imagegate.store.migrate import upgrade

__all__ = ["register"]

console = Console()

GC_YOUNG_THRESHOLD = 1_000
"""Allocations between two young-generation collections (Python's default: 700). While jobs pile
up nearly every young object survives, and each collection walks what it keeps: at 10,000 the
longest young collections stopped the event loop for 10-23 ms and the middle ones for 10-20 ms
(2,000 jobs in flight, or two workers' backlogs); at 1,000 none took more than ~5 ms, for about
as much collector CPU in all (``bench/notes.md`` ``## slow-callbacks``)."""
GC_MIDDLE_THRESHOLD = 2
"""Young collections between two collections of the middle generation, minus one: every fourth
collection is a middle one and walks what the three young ones before it kept, ~4,000 objects
at most (with Python's 10, every eleventh walked 11 young generations' worth)."""
GC_OLD_THRESHOLD = 400
"""Middle collections between two full ones (when enough objects grew old), minus one: a full
collection walks every object not frozen (with 2,000 jobs in flight, ~250,000: 50-100 ms), so
they come no more often than they did with 10,000 young allocations and 40 middle collections:
after 401 middle collections, each after four collections of 1,000 allocations (~1.6 million
allocations, as 41 × 4 × 10,000)."""

GIL_SWITCH_INTERVAL_SECONDS = 0.0005
"""How long a thread may hold the GIL while another waits for it, in a gateway or a worker on
PostgreSQL (Python's default: 5 ms). Its database work runs on body threads that wait on the
network without the GIL and need it back to read each answer; the event loop, busy with
requests, gives it up at its next system call or only after this long. Submit batches at 32
connections run one after another, so each wait lengthens every submit's answer
(``bench/notes.md`` ``## submit``). In a worker the wait runs the other way as well: the
event loop waits for the GIL behind its body threads and obstore's, and a step it holds up
counts as a slow callback (``bench/notes.md`` ``## e2e``)."""


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(worker)
    app.command()(migrate)


def serve(
    host: str | None = typer.Option(None, help="Bind address (default IMAGEGATE_HOST)."),
    port: int | None = typer.Option(None, help="Port (default IMAGEGATE_PORT, 8000)."),
    workers: int | None = typer.Option(
        None,
        help="Jobs decoding and storing images at once in this process (default "
        "IMAGEGATE_WORKERS); jobs waiting on upstreams are bounded by IMAGEGATE_JOBS_IN_FLIGHT.",
    ),
    no_workers: bool = typer.Option(
        False, "--no-workers", help="API only; run `imagegate worker` processes elsewhere."
    ),
) -> None:
    """Migrate the database, then run the API (and, unless --no-workers, the workers)."""
    settings = checked_settings(database=True, storage=True)
    logs = configure_logging(settings.log_level, settings.log_json)
    if workers is not None:
        settings = settings.model_copy(update={"workers": workers})
    slots = 0 if no_workers else settings.in_flight_limit
    settings = settings.listening_on(host or settings.host, port or settings.port)
    asyncio.run(_serve(settings, settings.host, settings.port, slots, logs))


class _Server(uvicorn.Server):
    """uvicorn's server, exiting 0 after a graceful stop on SIGTERM.

    uvicorn re-raises a caught signal once shut down, which ends the process by that signal:
    for SIGTERM, the way a supervisor (systemd, an orchestrator) asks for a graceful stop, a
    status of 0 says the stop went as asked, so SIGTERM is not re-raised. SIGINT still is. The
    log queue is written out first either way, as a re-raised signal ends the process without
    ``atexit`` handlers and the last lines ("Application shutdown complete") would be lost.
    """

    def __init__(self, config: uvicorn.Config, logs: LogPipeline) -> None:
        super().__init__(config)
        self._logs = logs

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals = [
                    captured for captured in self._captured_signals if captured != signal.SIGTERM
                ]
                self._logs.flush()


async def _serve(settings: Settings, host: str, port: int, workers: int, logs: LogPipeline) -> None:
    await upgrade(settings.database_url)
    runtime = build_runtime(settings)
    first = await bootstrap(runtime.db, runtime.clock, email=settings.owner_email)
    if first is not None:
        console.print(
            Panel.fit(
                f"Created account {first.account_id} with two API keys, shown this once:\n"
                f"a live key with {first.credits} demo credits, and a test key that runs every "
                "model on the built-in sandbox for free.",
                title="imagegate: first start",
            )
        )
        # Plain lines, never wrapped, so the keys can be copied (and parsed) whole.
        typer.echo(f"live key: {first.live_key}")
        typer.echo(f"test key: {first.test_key}")
    console.print(f"imagegate listening on http://{host}:{port}  (docs: /docs)")
    config = uvicorn.Config(
        create_app(runtime, workers=workers),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        http=header_deadline_protocol(settings.header_timeout_seconds),
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 5,
    )
    server = _Server(config, logs)
    settle_garbage_collector()
    if runtime.db.is_postgres:
        hand_the_gil_over_sooner()
    watch = asyncio.create_task(_exit_when_loops_fail(runtime.loops.failed, server))
    try:
        await server.serve()
    finally:
        watch.cancel()
    if runtime.loops.failed.is_set():
        raise SystemExit(1)


def settle_garbage_collector() -> None:
    """Keep Python's full collections short: they stop the event loop while they run.

    Everything made while starting (modules, the catalog, the app, the engines) lives as long as
    the process; frozen, it is no longer traversed by every full collection, which with
    thousands of jobs in flight took 300-500 ms each, and they come rarely (``GC_OLD_THRESHOLD``).
    While jobs pile up (each keeps its await chain alive until its vendor answers) nearly every
    young object survives, and every collection walks what the ones before it kept: the young
    generation is collected every ``GC_YOUNG_THRESHOLD`` allocations and the middle one at every
    fourth collection, so that each of those pauses stays a few milliseconds long.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, GC_MIDDLE_THRESHOLD, GC_OLD_THRESHOLD)


def hand_the_gil_over_sooner() -> None:
    """A thread waiting for the GIL gets it within ``GIL_SWITCH_INTERVAL_SECONDS``."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)


async def _exit_when_loops_fail(failed: asyncio.Event, server: uvicorn.Server) -> None:
    """A gateway whose background loops cannot be kept alive stops (and exits 1) rather than
    serving with no worker or no webhook sender."""
    await failed.wait()
    console.print("imagegate: a background loop kept crashing; stopping", style="red")
    server.should_exit = True


def worker(
    concurrency: int | None = typer.Option(
        None,
        help="Jobs in flight in this process (default IMAGEGATE_JOBS_IN_FLIGHT, derived from "
        "the providers' max_concurrency plus IMAGEGATE_WORKERS).",
    ),
) -> None:
    """Run a worker process: claims jobs from the database and drives them to completion."""
    settings = checked_settings(database=True, storage=True)
    configure_logging(settings.log_level, settings.log_json)
    asyncio.run(_worker(settings, concurrency))


async def _worker(settings: Settings, concurrency: int | None) -> None:
    await upgrade(settings.database_url)
    runtime = build_runtime(settings, busy_puts_in_place=True)
    metrics_server = None
    if settings.worker_metrics_port is not None:
        # A thread of prometheus_client's own: a scrape never waits on the event loop.
        metrics_server, _ = start_http_server(
            settings.worker_metrics_port, addr=settings.host, registry=runtime.metrics.registry
        )
    background = Background(runtime, concurrency)
    settle_garbage_collector()
    if runtime.db.is_postgres:
        hand_the_gil_over_sooner()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, background.stop_soon)
    try:
        await background.wait()
    except LoopsFailed as exc:
        console.print(f"imagegate worker: background loops failed ({exc}); exiting", style="red")
        raise SystemExit(1) from None
    finally:
        if metrics_server is not None:
            await asyncio.to_thread(metrics_server.shutdown)
        await runtime.aclose()


def migrate() -> None:
    """Bring the database schema up to date."""
    settings = checked_settings(database=True)
    asyncio.run(upgrade(settings.database_url))
    console.print("database is up to date")
