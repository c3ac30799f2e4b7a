"""API keys are remembered in each process for a moment, never longer than ``KEY_CACHE_SECONDS``:
a key revoked through one gateway stops working at once there and within that time in another
gateway on the same database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from imagegate.api.app import create_app
from imagegate.runtime import build_runtime
from imagegate.services.accounts import KEY_CACHE_SECONDS, KeyCache
from tests.conftest import make_settings
from tests.integration.conftest import Gateway


@pytest.fixture
async def other_process(database_url: str, tmp_path: Path) -> AsyncIterator[httpx2.AsyncClient]:
    """A second gateway (its own runtime, as another API process would have) on one database."""
    runtime = build_runtime(make_settings(database_url, tmp_path / "other"))
    try:
        transport = httpx2.ASGITransport(app=create_app(runtime))
        async with httpx2.AsyncClient(transport=transport, base_url="http://other") as http:
            yield http
    finally:
        await runtime.aclose()


async def test_a_revoked_key_stops_working_everywhere_within_the_cache_time(
    gateway: Gateway, other_process: httpx2.AsyncClient
) -> None:
    created = (
        await gateway.http.post(
            "/v2/account/keys", headers=gateway.headers(gateway.live_key), json={"name": "ci"}
        )
    ).json()
    key = {"X-API-Key": created["key"]}
    assert (await gateway.http.get("/v2/me", headers=key)).status_code == 200
    assert (await other_process.get("/v2/me", headers=key)).status_code == 200  # now remembered

    revoked = await gateway.http.post(
        f"/v2/account/keys/{created['id']}/revoke", headers=gateway.headers(gateway.live_key)
    )
    assert revoked.status_code == 200
    started = time.monotonic()

    assert (await gateway.http.get("/v2/me", headers=key)).status_code == 401
    while (await other_process.get("/v2/me", headers=key)).status_code == 200:
        assert time.monotonic() - started < KEY_CACHE_SECONDS + 0.5, "the revocation never came"
        await asyncio.sleep(0.05)
    assert (await other_process.get("/v2/me", headers=key)).status_code == 401


async def test_requests_that_miss_the_cache_together_share_one_read(gateway: Gateway) -> None:
    cache = KeyCache(gateway.runtime.db)
    reads = 0
    read_with = gateway.runtime.db.read_with

    async def counted(body: Any) -> Any:
        nonlocal reads
        reads += 1
        return await read_with(body)

    gateway.runtime.db.read_with = counted  # type: ignore[method-assign]
    try:
        callers = await asyncio.gather(*(cache.authenticate(gateway.test_key) for _ in range(50)))
    finally:
        del gateway.runtime.db.read_with
    assert reads == 1
    assert {caller.key_id for caller in callers} == {callers[0].key_id}
