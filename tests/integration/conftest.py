"""A whole gateway in-process: runtime, ASGI app, an HTTP client and an account with keys."""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import structlog

from imagegate.api.app import create_app
from imagegate.observability.logging import configure_logging, flush_logs
from imagegate.observability.tracing import JobTracing
from imagegate.providers.port import ProviderAdapter
from imagegate.queue.claims import next_due
from imagegate.runtime import Runtime, build_runtime
from imagegate.services import accounts as account_service
from imagegate.testing.clock import FakeClock
from imagegate.testing.vendors import VendorTransport, provider_settings
from imagegate.types import KeyKind
from tests.conftest import make_settings

CREATED_KEYS: set[str] = set()
"""Every API key ``open_gateway`` made this session; none may ever appear in a log line."""

SESSION_LOGS = io.StringIO()


def log_to_session_buffer() -> None:
    configure_logging("INFO", json=True, stream=SESSION_LOGS)


@pytest.fixture(scope="session", autouse=True)
def logs_never_hold_a_key() -> Iterator[None]:
    """Every integration test logs through the production pipeline (JSON) into one buffer; at the
    end of the session no line may hold a key any test created."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    log_to_session_buffer()
    yield
    flush_logs()
    structlog.reset_defaults()
    root.handlers[:], root.level = saved
    text = SESSION_LOGS.getvalue()
    leaked = sorted(key[:12] + "…" for key in CREATED_KEYS if key in text)
    assert not leaked, f"API keys found in the integration tests' logs: {leaked}"


@pytest.fixture
def capture_logs() -> Iterator[Callable[[bool], io.StringIO]]:
    """``capture_logs(json)``: this test's log lines, in that format, in a buffer of its own."""
    buffers: list[io.StringIO] = []

    def capture(as_json: bool) -> io.StringIO:
        buffers.append(io.StringIO())
        configure_logging("DEBUG", json=as_json, stream=buffers[-1])
        return buffers[-1]

    yield capture
    log_to_session_buffer()


@dataclass
class Gateway:
    runtime: Runtime
    http: httpx2.AsyncClient
    account_id: str
    live_key: str
    test_key: str
    clock: FakeClock

    def headers(self, key: str | None = None, **extra: str) -> dict[str, str]:
        return {"X-API-Key": key or self.test_key, **extra}

    async def submit(
        self, body: dict[str, Any], key: str | None = None, **headers: str
    ) -> httpx2.Response:
        return await self.http.post(
            "/v2/images/generate", json=body, headers=self.headers(key, **headers)
        )

    async def job(self, job_id: str, key: str | None = None) -> dict[str, Any]:
        response = await self.http.get(f"/v2/jobs/{job_id}", headers=self.headers(key))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def drain(self, rounds: int = 50) -> None:
        """Run the queue until nothing is due, advancing the fake clock past each poll delay."""
        worker = self.runtime.worker(concurrency=8)
        for _ in range(rounds):
            await worker.drain()
            async with self.runtime.db.read() as conn:
                due = await next_due(conn)
            if due is None:
                return
            if due > self.clock.now_ms():
                self.clock.set(due)

    async def balance(self) -> int:
        response = await self.http.get("/v2/me", headers=self.headers(self.live_key))
        return int(response.json()["team"]["credits"])


@contextlib.asynccontextmanager
async def open_gateway(
    database_url: str,
    data_dir: Path,
    credits: int = 1000,
    adapters: Mapping[str, ProviderAdapter] | None = None,
    transport: httpx2.AsyncBaseTransport | None = None,
    tracing: JobTracing | None = None,
    **settings: Any,
) -> AsyncIterator[Gateway]:
    """A gateway on ``database_url`` with an account holding ``credits`` and a live and a test key.

    ``transport`` reaches the vendors (see ``imagegate.testing.vendors``) and result URLs. Used with
    ``async with``: the runtime is closed however the body ends.
    """
    clock = FakeClock(start_ms=time.time_ns() // 1_000_000)
    runtime = build_runtime(
        make_settings(database_url, data_dir, **settings),
        clock=clock,
        adapters=adapters,
        transport=transport,
        tracing=tracing,
    )
    try:
        app = create_app(runtime)
        account = await account_service.create_account(runtime.db, clock, "acme", "ops@acme.test")
        live = await account_service.create_key(runtime.db, clock, account.id, KeyKind.LIVE, "live")
        test = await account_service.create_key(runtime.db, clock, account.id, KeyKind.TEST, "test")
        CREATED_KEYS.update((live.secret, test.secret))
        if credits:
            await account_service.grant_credits(runtime.db, clock, account.id, credits)
        asgi = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=asgi, base_url="http://testserver") as http:
            yield Gateway(runtime, http, account.id, live.secret, test.secret, clock)
    finally:
        await runtime.aclose()


def on_fake_vendors(
    database_url: str, data_dir: Path, vendors: VendorTransport, **settings: Any
) -> contextlib.AbstractAsyncContextManager[Gateway]:
    """A gateway whose live keys reach the fake vendors of ``imagegate.testing.vendors``."""
    return open_gateway(
        database_url, data_dir, transport=vendors, providers=provider_settings(), **settings
    )


def one_route(model: str, route: str) -> dict[str, Any]:
    """Settings forcing ``model`` onto ``route`` alone (no other route, no substitute)."""
    return {"routes": {model: [route]}, "allow_substitutes": False}


SANDBOX_ROUTES = {"gpt-image-1.5": ["sandbox:gpt-image-1.5"], "midjourney": ["sandbox:midjourney"]}


@pytest.fixture
async def gateway(database_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    """A gateway whose live keys run gpt-image-1.5 and midjourney on the sandbox (charged)."""
    async with open_gateway(database_url, tmp_path / "data", routes=SANDBOX_ROUTES) as gw:
        yield gw
