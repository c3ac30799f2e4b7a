"""Per-key request rates: ``RateLimit-*`` fields on every authenticated response and 429 with
``Retry-After`` past the budget, counted in memory or in Redis shared by several API processes."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx2
import pytest

from imagegate.api.app import create_app
from imagegate.runtime import build_runtime
from imagegate.services import accounts as account_service
from tests.conftest import count_rows, make_settings
from tests.integration.conftest import SANDBOX_ROUTES, Gateway, open_gateway
from tests.integration.limits.conftest import GPT


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings for the limiter's storage; Redis gets a key prefix of this test's own."""
    if request.param == "memory":
        return {}
    return {
        "redis_url": request.getfixturevalue("redis_url"),
        "redis_prefix": f"test-{uuid.uuid4().hex}",
    }


@contextlib.asynccontextmanager
async def limited_gateway(
    sqlite_url: str, tmp_path: Path, **settings: Any
) -> AsyncIterator[Gateway]:
    async with open_gateway(sqlite_url, tmp_path / "data", routes=SANDBOX_ROUTES, **settings) as gw:
        yield gw


def budget(response: httpx2.Response) -> tuple[int, int, int]:
    """``(limit, remaining, reset)`` from the draft-06 fields."""
    h = response.headers
    return int(h["RateLimit-Limit"]), int(h["RateLimit-Remaining"]), int(h["RateLimit-Reset"])


async def test_every_authenticated_response_carries_its_budget(
    sqlite_url: str, tmp_path: Path, storage: dict[str, Any]
) -> None:
    settings = {"rate_limit_submit": "5/minute", "rate_limit_read": "10/minute", **storage}
    async with limited_gateway(sqlite_url, tmp_path, **settings) as gw:
        submitted = await gw.submit(GPT)
        assert submitted.status_code == 202, submitted.text
        limit, remaining, reset = budget(submitted)
        assert (limit, remaining) == (5, 4)
        assert 1 <= reset <= 60
        assert submitted.headers["RateLimit-Policy"] == "5;w=60"

        polled = await gw.http.get(f"/v2/jobs/{submitted.json()['jobId']}", headers=gw.headers())
        assert polled.status_code == 200
        assert budget(polled)[:2] == (10, 9)

        missing = await gw.http.get(f"/v2/jobs/{uuid.uuid4()}", headers=gw.headers())
        assert missing.status_code == 404
        assert budget(missing)[:2] == (10, 8)

        anonymous = await gw.http.get("/v2/jobs")
        assert anonymous.status_code == 401
        assert "RateLimit-Limit" not in anonymous.headers


async def test_a_spent_budget_is_429_with_retry_after_and_submits_nothing(
    sqlite_url: str, tmp_path: Path, storage: dict[str, Any]
) -> None:
    async with limited_gateway(sqlite_url, tmp_path, rate_limit_submit="3/minute", **storage) as gw:
        for _ in range(3):
            assert (await gw.submit(GPT)).status_code == 202
        refused = await gw.submit(GPT)

        assert refused.status_code == 429
        body = refused.json()
        assert body["code"] == "rate_limited"
        assert "3 submit requests per 60 seconds" in body["error"]
        limit, remaining, reset = budget(refused)
        assert (limit, remaining) == (3, 0)
        assert refused.headers["Retry-After"] == str(reset)
        assert await count_rows(gw.runtime.db, "jobs") == 3
        # Reads draw from their own budget.
        assert (await gw.http.get("/v2/jobs", headers=gw.headers())).status_code == 200


async def test_each_key_has_its_own_budget_and_may_have_its_own_rate(
    sqlite_url: str, tmp_path: Path, storage: dict[str, Any]
) -> None:
    async with limited_gateway(sqlite_url, tmp_path, rate_limit_submit="2/minute", **storage) as gw:
        await account_service.set_key_limits(gw.runtime.db, gw.test_key, {"submit_rate": "1/hour"})

        assert (await gw.submit(GPT)).status_code == 202
        refused = await gw.submit(GPT)
        assert refused.status_code == 429
        assert refused.headers["RateLimit-Policy"] == "1;w=3600"
        assert 60 < int(refused.headers["Retry-After"]) <= 3600

        live = await gw.submit(GPT, key=gw.live_key)
        assert live.status_code == 202
        assert budget(live)[:2] == (2, 1)


async def test_an_empty_rate_turns_that_limit_off(sqlite_url: str, tmp_path: Path) -> None:
    async with limited_gateway(
        sqlite_url, tmp_path, rate_limit_submit="5/minute", rate_limit_read=""
    ) as gw:
        listed = await gw.http.get("/v2/jobs", headers=gw.headers())
        assert listed.status_code == 200
        assert "RateLimit-Limit" not in listed.headers
        assert "RateLimit-Limit" in (await gw.submit(GPT)).headers


async def test_two_api_processes_share_one_budget_in_redis(
    sqlite_url: str, tmp_path: Path, redis_url: str
) -> None:
    shared = {
        "rate_limit_submit": "4/minute",
        "redis_url": redis_url,
        "redis_prefix": f"test-{uuid.uuid4().hex}",
    }
    async with limited_gateway(sqlite_url, tmp_path, **shared) as first:
        settings = make_settings(sqlite_url, tmp_path / "data", routes=SANDBOX_ROUTES, **shared)
        runtime = build_runtime(settings, clock=first.clock)
        transport = httpx2.ASGITransport(app=create_app(runtime))
        try:
            async with httpx2.AsyncClient(transport=transport, base_url="http://second") as second:
                headers = first.headers()
                submit_to_second = partial(
                    second.post, "/v2/images/generate", json=GPT, headers=headers
                )
                assert (await first.submit(GPT)).status_code == 202
                assert (await submit_to_second()).status_code == 202
                assert (await first.submit(GPT)).status_code == 202
                last = await submit_to_second()
                assert last.status_code == 202
                assert budget(last)[:2] == (4, 0)
                assert (await first.submit(GPT)).status_code == 429
                assert (await submit_to_second()).status_code == 429
        finally:
            await runtime.aclose()
