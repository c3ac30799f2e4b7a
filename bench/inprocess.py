"""The CPU one API request costs, without a network: the ASGI app called directly.

Builds the app the way ``imagegate serve --no-workers`` does (a fresh SQLite file, or
``--database-url``; log level WARNING; the first account's test key), then sends ``--requests``
requests of one kind from ``--concurrency`` tasks straight to the ASGI callable and prints the
process CPU per request (all threads: the event loop and the database's) and requests per
second. ``--profile OUT`` runs the measured part under cProfile and writes its stats there
(read them with ``python -m pstats OUT``).

    .venv/bin/python bench/inprocess.py submit
    .venv/bin/python bench/inprocess.py submit --idempotency --profile /tmp/submit.prof
    .venv/bin/python bench/inprocess.py read
    .venv/bin/python bench/inprocess.py healthz
    .venv/bin/python bench/inprocess.py anchor-submit   # bench/anchor.py's app, for scale
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.types import ASGIApp, Message

from bench.gateway import log

BODY = json.dumps(
    {"model": "gpt-image-1.5", "prompt": "bench", "gptImageParams": {"quality": "low"}}
).encode()
KINDS = ("submit", "read", "healthz", "anchor-submit", "anchor-read")


def http_scope(method: str, path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    if body:
        raw.append((b"content-length", str(len(body)).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": raw,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def call(app: ASGIApp, scope: dict[str, Any], body: bytes) -> int:
    """One request through ``app``; its status."""
    sent = False
    status = 0

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # never: the request is answered before a disconnect
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(dict(scope, state={}), receive, send)
    return status


async def lifespan(app: ASGIApp) -> Callable[[], Awaitable[None]]:
    """Start the app's lifespan; returns the coroutine function that ends it."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))  # type: ignore[arg-type]
    await inbox.put({"type": "lifespan.startup"})
    await outbox.get()

    async def stop() -> None:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task

    return stop


async def imagegate_app(workdir: Path, database_url: str | None) -> tuple[ASGIApp, str]:
    sqlite = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    os.environ.setdefault("IMAGEGATE_DATABASE_URL", database_url or sqlite)
    os.environ.setdefault("IMAGEGATE_DATA_DIR", str(workdir / "data"))
    os.environ.setdefault("IMAGEGATE_LOG_LEVEL", "WARNING")
    os.environ.setdefault("IMAGEGATE_MAX_QUEUED_JOBS_PER_ACCOUNT", "10000000")
    from imagegate.api.app import create_app
    from imagegate.cli.config import provider_names
    from imagegate.observability.logging import configure_logging
    from imagegate.runtime import build_runtime
    from imagegate.services.bootstrap import bootstrap
    from imagegate.settings import load_settings
    from imagegate.store.migrate import upgrade

    settings = load_settings(provider_names())
    configure_logging(settings.log_level, settings.log_json)
    await upgrade(settings.database_url)
    runtime = build_runtime(settings)
    first = await bootstrap(runtime.db, runtime.clock)
    assert first is not None, "use a fresh database"
    return create_app(runtime), first.test_key


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if args.kind.startswith("anchor"):
            from bench.anchor import create_app as anchor_app

            app: ASGIApp = anchor_app()
            key = ""
        else:
            app, key = await imagegate_app(Path(tmp), args.database_url)
        stop = await lifespan(app)
        headers = {"content-type": "application/json", "x-api-key": key}
        post = http_scope("POST", "/v2/images/generate", headers, BODY)
        job_path = "/v2/jobs/0192f4a8-7c1e-7b3a-9d2e-5f6a7b8c9d0e"
        if args.kind == "read":
            job_id = await submit_one(app, post)
            job_path = f"/v2/jobs/{job_id}"
        counter = 0

        def scope() -> tuple[dict[str, Any], bytes]:
            nonlocal counter
            counter += 1
            if args.kind in ("submit", "anchor-submit"):
                if args.idempotency:
                    extra = [(b"idempotency-key", f"k-{counter}".encode())]
                    return {**post, "headers": post["headers"] + extra}, BODY
                return post, BODY
            if args.kind == "healthz":
                return http_scope("GET", "/healthz", {}, b""), b""
            return http_scope("GET", job_path, headers, b""), b""

        statuses: dict[int, int] = {}

        async def client(n: int) -> None:
            for _ in range(n):
                status = await call(app, *scope())
                statuses[status] = statuses.get(status, 0) + 1

        per = max(1, args.requests // args.concurrency)
        await asyncio.gather(*(client(min(per, 20)) for _ in range(args.concurrency)))  # warm
        statuses.clear()
        profile = cProfile.Profile() if args.profile else None
        cpu, wall = time.process_time(), time.perf_counter()
        if profile:
            profile.enable()
        await asyncio.gather(*(client(per) for _ in range(args.concurrency)))
        if profile:
            profile.disable()
            profile.dump_stats(args.profile)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        done = sum(statuses.values())
        log(
            f"{args.kind}{' +idem' if args.idempotency else ''}: {done} requests {statuses}, "
            f"{cpu / done * 1e6:.0f} µs CPU each, {done / wall:.0f} req/s"
        )
        await stop()


async def submit_one(app: ASGIApp, post: dict[str, Any]) -> str:
    body: list[bytes] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    await app(dict(post, state={}), receive, send)
    job_id: str = json.loads(b"".join(body))["jobId"]
    return job_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--idempotency", action="store_true")
    parser.add_argument("--database-url")
    parser.add_argument("--profile", metavar="OUT")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
