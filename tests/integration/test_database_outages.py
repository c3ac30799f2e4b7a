"""A PostgreSQL outage pauses background work; it never kills it, and never buys an answer twice.

Each test runs the gateway against a private PostgreSQL server it stops (``immediate``, as a
crash would) and starts again, with a real clock and short leases and back-offs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from pytest_httpserver import HTTPServer
from structlog.testing import capture_logs

from imagegate.api.app import create_app
from imagegate.runtime import Background, Runtime, build_runtime
from imagegate.services import accounts as account_service
from imagegate.store import jobs as job_store
from imagegate.testing.invariants import check_invariants
from imagegate.testing.vendors import VendorTransport, provider_settings
from imagegate.types import KeyKind
from tests.conftest import make_settings
from tests.private_postgres import PrivatePostgres, private_postgres

pytestmark = pytest.mark.timeout(60)

BODY = {"model": "gpt-image-1.5", "prompt": "a kite", "gptImageParams": {"quality": "low"}}

FAST = {
    "lease_seconds": 3.0,
    "poll_interval_seconds": 0.05,
    "outage_backoff_seconds": 0.05,
    "outage_backoff_cap_seconds": 0.2,
    "sweep_interval_seconds": 0.2,
}


@pytest.fixture(scope="module")
def server() -> Iterator[PrivatePostgres]:
    with private_postgres() as pg:
        yield pg


@dataclass
class Live:
    runtime: Runtime
    http: httpx2.AsyncClient
    key: str

    async def submit(self, **extra: Any) -> str:
        response = await self.http.post(
            "/v2/images/generate", json={**BODY, **extra}, headers={"X-API-Key": self.key}
        )
        assert response.status_code == 202, response.text
        job_id: str = response.json()["jobId"]
        return job_id

    async def job(self, job_id: str) -> job_store.JobRow:
        async with self.runtime.db.read() as conn:
            row = await job_store.get_job(conn, job_id)
        assert row is not None
        return row


@contextlib.asynccontextmanager
async def open_live(
    server: PrivatePostgres,
    data_dir: Path,
    *,
    key_kind: KeyKind = KeyKind.TEST,
    transport: httpx2.AsyncBaseTransport | None = None,
    **settings: Any,
) -> AsyncIterator[Live]:
    """A gateway on a fresh database of ``server``, on the system clock."""
    runtime = build_runtime(
        make_settings(server.create_database(), data_dir, **{**FAST, **settings}),
        transport=transport,
    )
    account = await account_service.create_account(runtime.db, runtime.clock, "acme")
    key = await account_service.create_key(runtime.db, runtime.clock, account.id, key_kind, "k")
    await account_service.grant_credits(runtime.db, runtime.clock, account.id, 1000)
    app = create_app(runtime)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        yield Live(runtime, http, key.secret)
    await runtime.aclose()


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def settled(live: Live, job_ids: list[str]) -> bool:
    for job_id in job_ids:
        try:
            job = await live.job(job_id)
        except Exception:
            return False
        if job.status != "COMPLETED" or job.webhook_status != "delivered":
            return False
    return True


async def test_the_worker_and_the_sender_keep_going_across_a_postgres_outage(
    server: PrivatePostgres, tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    hook = httpserver.url_for("/hook")
    async with open_live(server, tmp_path) as live:
        with capture_logs() as logs:
            background = Background(live.runtime, concurrency=2)
            before = [await live.submit(webhookUrl=hook) for _ in range(3)]
            await until(lambda: settled(live, before))
            assert (await live.http.get("/readyz")).status_code == 200

            server.stop()
            try:
                await until(
                    lambda: asyncio.sleep(
                        0, {"worker", "webhooks"} <= set(live.runtime.loops.problems())
                    )
                )
                during = await live.http.get("/readyz")
                assert during.status_code == 503
                assert "worker: outage" in during.json()["checks"]["loops"]
                await asyncio.sleep(0.5)  # many retries, one log line
            finally:
                server.start()

            after = [await live.submit(webhookUrl=hook) for _ in range(3)]
            await until(lambda: settled(live, after))
            await until(lambda: asyncio.sleep(0, not live.runtime.loops.problems()))
            assert (await live.http.get("/readyz")).status_code == 200
            assert not any(task.done() for task in background.supervisor._tasks)
            await background.stop()
        for loop in ("worker", "webhooks"):
            started = [e for e in logs if e["event"] == "loop.outage_started" and e["loop"] == loop]
            ended = [e for e in logs if e["event"] == "loop.outage_ended" and e["loop"] == loop]
            assert len(started) == 1 and len(ended) == 1, (loop, started, ended)
            assert ended[0]["retries"] > 3
        assert len(httpserver.log) == 6
        received: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
        for request, _ in httpserver.log:
            body = request.get_json()
            received[body["jobId"]].append((body["event"], request.headers["webhook-id"]))
        await check_invariants(
            live.runtime.settings.database_url, expected_jobs=before + after, webhooks=received
        )


class OutageDuringAnswer(httpx2.AsyncBaseTransport):
    """The vendors' transport, which stops the database while the vendor's answer is on its way
    and starts it again ``down_for`` seconds later."""

    def __init__(self, server: PrivatePostgres, down_for: float) -> None:
        self.vendors = VendorTransport()
        self._server = server
        self._down_for = down_for
        self.armed = True
        self.restart = threading.Timer(down_for, server.start)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.vendors.handle_async_request(request)
        if self.armed and request.url.host == "api.openai.com":
            self.armed = False
            await asyncio.to_thread(self._server.stop)
            self.restart.start()
        return response


async def test_an_answer_received_during_an_outage_is_recorded_after_it_not_bought_again(
    server: PrivatePostgres, tmp_path: Path
) -> None:
    transport = OutageDuringAnswer(server, down_for=1.5)
    async with open_live(
        server,
        tmp_path,
        key_kind=KeyKind.LIVE,
        transport=transport,
        providers=provider_settings(),
        routes={"gpt-image-1.5": ["openai:gpt-image-1.5"]},
    ) as live:
        job_id = await live.submit()
        worker = live.runtime.worker(concurrency=1)
        with capture_logs() as logs:
            await worker.drain()
        await until(lambda: asyncio.sleep(0, not transport.armed))
        await asyncio.to_thread(transport.restart.join)  # the server is up again before teardown
        job = await live.job(job_id)
        assert job.status == "COMPLETED", (job.status, job.error)
        assert job.outputs and len(job.outputs) == 1
        assert job.call_started_at is None and job.interrupted_calls == 0
        assert len(transport.vendors.app("openai").state.requests) == 1
        await check_invariants(
            live.runtime.settings.database_url, expected_jobs=[job_id], upstream_calls={job_id: 1}
        )
        events = [e["event"] for e in logs]
        assert events.count("job.answer_unrecorded") == 1
        assert events.count("job.answer_recorded") == 1
