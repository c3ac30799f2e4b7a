"""Routing across upstreams: fail-over, 429 cool-downs, the circuit breaker, global caps."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from imagegate.errors import (
    UpstreamMisconfigured,
    UpstreamModerated,
    UpstreamRateLimited,
    UpstreamRetryable,
)
from imagegate.providers.port import Finished, GenerationRequest, OutputImage
from imagegate.store import jobs as job_store
from tests.images import image_bytes
from tests.integration.conftest import Gateway, open_gateway
from tests.integration.queue.test_worker import BODY, ScriptedAdapter

TWO_ROUTES = {"gpt-image-1.5": ["alpha:gpt-a", "beta:gpt-b"]}


@pytest.fixture(params=["database", "redis"])
def gates(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Where the provider gates keep their shared state: the database, or a real Redis."""
    if request.param == "database":
        yield {}
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"imagegate-test-{uuid.uuid4().hex}"
    yield {"redis_url": url, "redis_prefix": prefix}
    with redis.Redis.from_url(url) as client:
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)


class CountingAdapter(ScriptedAdapter):
    """Finishes after ``delay`` seconds and remembers how many calls overlapped."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay=delay)
        self.in_flight = 0
        self.most_in_flight = 0

    async def submit(self, request: GenerationRequest) -> Finished:
        self.submits += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        return Finished(images=[OutputImage(data=image_bytes((8, 8), "red"))])


@contextlib.asynccontextmanager
async def routed(
    database_url: str, tmp_path: Path, adapters: dict[str, Any], **settings: Any
) -> AsyncIterator[Gateway]:
    settings.setdefault("routes", TWO_ROUTES)
    async with open_gateway(database_url, tmp_path, adapters=adapters, **settings) as gw:
        yield gw


async def submit(gw: Gateway, body: dict[str, Any] = BODY) -> str:
    response = await gw.submit(body, key=gw.live_key)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["jobId"]
    return job_id


async def events(gw: Gateway, job_id: str) -> list[str]:
    async with gw.runtime.db.read() as conn:
        return [event["kind"] for event in await job_store.list_events(conn, job_id)]


async def test_a_retryable_submit_failure_fails_over_to_the_next_route(
    database_url: str, tmp_path: Path
) -> None:
    alpha = ScriptedAdapter([UpstreamRetryable("alpha is down", provider="alpha")])
    beta = ScriptedAdapter()
    async with routed(database_url, tmp_path, {"alpha": alpha, "beta": beta}) as gw:
        job_id = await submit(gw)
        await gw.drain()
        job = await gw.job(job_id, key=gw.live_key)
        assert job["status"] == "COMPLETED"
        assert job["servedBy"] == {"provider": "beta", "model": "gpt-b"}
        assert (alpha.submits, beta.submits) == (1, 1)
        assert "failover" in await events(gw, job_id)
        assert job["creditCost"] == 4


async def test_moderation_does_not_fail_over(database_url: str, tmp_path: Path) -> None:
    alpha = ScriptedAdapter([UpstreamModerated(provider="alpha")])
    beta = ScriptedAdapter()
    async with routed(database_url, tmp_path, {"alpha": alpha, "beta": beta}) as gw:
        job_id = await submit(gw)
        await gw.drain()
        job = await gw.job(job_id, key=gw.live_key)
        assert job["status"] == "FAILED"
        assert "content policy" in job["error"]
        assert beta.submits == 0
        assert await gw.balance() == 1000


async def test_a_short_429_waits_for_the_same_provider_without_spending_attempts(
    database_url: str, tmp_path: Path, gates: dict[str, Any]
) -> None:
    limited = [UpstreamRateLimited("slow down", provider="alpha", retry_after=3)] * 8
    alpha = ScriptedAdapter(list(limited))
    beta = ScriptedAdapter()
    async with routed(
        database_url, tmp_path, {"alpha": alpha, "beta": beta}, max_attempts=3, **gates
    ) as gw:
        job_id = await submit(gw)
        await gw.drain(rounds=100)
        job = await gw.job(job_id, key=gw.live_key)
        assert job["status"] == "COMPLETED", job  # 8 rate limits > max_attempts: none counted
        assert job["servedBy"]["provider"] == "alpha"
        assert (alpha.submits, beta.submits) == (9, 0)


async def test_a_long_429_sends_jobs_to_the_next_route(
    database_url: str, tmp_path: Path, gates: dict[str, Any]
) -> None:
    alpha = ScriptedAdapter([UpstreamRateLimited("quota", provider="alpha", retry_after=120)])
    beta = ScriptedAdapter()
    async with routed(database_url, tmp_path, {"alpha": alpha, "beta": beta}, **gates) as gw:
        first = await submit(gw)
        worker = gw.runtime.worker(concurrency=1)
        await worker.drain()  # alpha answers 429: a two-minute cool-down starts
        second = await submit(gw)
        await gw.drain()
        for job_id in (first, second):
            job = await gw.job(job_id, key=gw.live_key)
            assert job["status"] == "COMPLETED"
            assert job["servedBy"]["provider"] == "beta"
        assert alpha.submits == 1
        ready = (await gw.http.get("/readyz")).json()
        assert ready["providers"]["alpha"]["status"] in ("ok", "rate-limited")


async def test_repeated_failures_open_the_circuit_and_a_probe_closes_it(
    database_url: str, tmp_path: Path, gates: dict[str, Any]
) -> None:
    down = [UpstreamRetryable("boom", provider="alpha")] * 2
    alpha = ScriptedAdapter(list(down))
    beta = ScriptedAdapter()
    async with routed(
        database_url,
        tmp_path,
        {"alpha": alpha, "beta": beta},
        circuit_failures=2,
        circuit_open_seconds=60,
        **gates,
    ) as gw:
        for _ in range(2):
            await submit(gw)
            await gw.drain()
        assert (alpha.submits, beta.submits) == (2, 2)  # each failed over
        assert (await gw.http.get("/readyz")).json()["providers"]["alpha"]["status"] == (
            "circuit-open"
        )

        await submit(gw)
        await gw.drain()
        assert (alpha.submits, beta.submits) == (2, 3)  # circuit open: alpha is skipped

        gw.clock.advance(61)
        probe = await submit(gw)
        await gw.drain()
        assert alpha.submits == 3  # half-open: one call goes through and succeeds
        assert (await gw.job(probe, key=gw.live_key))["servedBy"]["provider"] == "alpha"
        assert (await gw.http.get("/readyz")).json()["providers"]["alpha"]["status"] == "ok"


async def test_the_concurrency_cap_holds_under_100_concurrent_jobs(
    database_url: str, tmp_path: Path, gates: dict[str, Any]
) -> None:
    alpha = CountingAdapter(delay=0.05)
    providers = {"alpha": {"max_concurrency": 4}}
    routes = {"gpt-image-1.5": ["alpha:gpt-a"]}
    async with routed(
        database_url, tmp_path, {"alpha": alpha}, routes=routes, providers=providers, **gates
    ) as gw:
        job_ids = [await submit(gw) for _ in range(100)]
        workers = [gw.runtime.worker(concurrency=25) for _ in range(4)]  # 100 slots in all
        for _ in range(200):
            await asyncio.gather(*(worker.drain() for worker in workers))
            if alpha.submits == 100:
                break
            gw.clock.advance(1)
        assert alpha.submits == 100
        assert alpha.most_in_flight == 4
        statuses = {(await gw.job(j, key=gw.live_key))["status"] for j in job_ids}
        assert statuses == {"COMPLETED"}
        assert await gw.balance() == 1000 - 100 * 4


async def test_the_rate_limit_spaces_calls_per_minute(
    database_url: str, tmp_path: Path, gates: dict[str, Any]
) -> None:
    alpha = ScriptedAdapter()
    providers = {"alpha": {"rate_per_minute": 2}}
    routes = {"gpt-image-1.5": ["alpha:gpt-a"]}
    async with routed(
        database_url, tmp_path, {"alpha": alpha}, routes=routes, providers=providers, **gates
    ) as gw:
        job_ids = [await submit(gw) for _ in range(3)]
        await gw.runtime.worker(concurrency=3).drain()
        assert alpha.submits == 2
        third = [j for j in job_ids if (await gw.job(j, key=gw.live_key))["status"] != "COMPLETED"]
        assert len(third) == 1
        assert "deferred" in await events(gw, third[0])
        await gw.drain()  # the clock moves to the next window
        assert alpha.submits == 3
        assert (await gw.job(third[0], key=gw.live_key))["status"] == "COMPLETED"


async def test_misconfigured_credentials_fail_the_job_and_show_in_readyz(
    database_url: str, tmp_path: Path, gates: dict[str, Any]
) -> None:
    alpha = ScriptedAdapter([UpstreamMisconfigured("alpha refused our key", provider="alpha")])
    routes = {"gpt-image-1.5": ["alpha:gpt-a"]}
    async with routed(database_url, tmp_path, {"alpha": alpha}, routes=routes, **gates) as gw:
        job_id = await submit(gw)
        await gw.drain()
        assert (await gw.job(job_id, key=gw.live_key))["status"] == "FAILED"
        ready = await gw.http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["providers"]["alpha"] == {
            "status": "misconfigured",
            "error": "alpha refused our key",
        }
        assert await gw.balance() == 1000


DALLE = {"model": "dall-e-3", "prompt": "a lighthouse", "dalleParams": {"aspect_ratio": "3:2"}}


async def test_a_retired_model_runs_on_its_documented_substitute(
    database_url: str, tmp_path: Path
) -> None:
    openai = ScriptedAdapter()
    routes = {"dall-e-3": ["replicate:openai/dall-e-3"]}  # replicate is not configured
    async with routed(database_url, tmp_path, {"openai": openai}, routes=routes) as gw:
        job_id = await submit(gw, DALLE)
        await gw.drain()
        job = await gw.job(job_id, key=gw.live_key)
        assert job["status"] == "COMPLETED"
        assert job["servedBy"] == {"provider": "openai", "model": "gpt-image-1.5"}
        assert job["creditCost"] == 21


async def test_a_retired_model_is_refused_when_substitutes_are_disabled(
    database_url: str, tmp_path: Path
) -> None:
    routes = {"dall-e-3": ["replicate:openai/dall-e-3"]}
    async with routed(
        database_url,
        tmp_path,
        {"openai": ScriptedAdapter()},
        routes=routes,
        allow_substitutes=False,
    ) as gw:
        response = await gw.submit(DALLE, key=gw.live_key)
        assert response.status_code == 400
        message = response.json()["details"]["model"][0]
        assert "retired upstream on 2026-05-12" in message
        assert "substitutes are disabled" in message
        assert await gw.balance() == 1000


async def test_the_job_records_the_model_the_vendor_says_it_ran(
    database_url: str, tmp_path: Path
) -> None:
    pinned = Finished(
        images=[OutputImage(data=image_bytes((8, 8), "red"))], served_model="gpt-a-2026-11-01"
    )
    alpha = ScriptedAdapter([pinned])
    routes = {"gpt-image-1.5": ["alpha:gpt-a"]}
    async with routed(database_url, tmp_path, {"alpha": alpha}, routes=routes) as gw:
        job_id = await submit(gw)
        await gw.drain()
        job = await gw.job(job_id, key=gw.live_key)
        assert job["servedBy"] == {"provider": "alpha", "model": "gpt-a-2026-11-01"}


async def test_a_provider_whose_options_are_wrong_fails_jobs_and_shows_in_readyz(
    database_url: str, tmp_path: Path
) -> None:
    providers = {"ark": {"api_key": "k", "options": {"region": "mars"}}}
    routes = {"gpt-image-1.5": ["ark:seedream-x"]}
    async with routed(database_url, tmp_path, {}, routes=routes, providers=providers) as gw:
        job_id = await submit(gw)
        await gw.drain()
        job = await gw.job(job_id, key=gw.live_key)
        assert job["status"] == "FAILED"
        assert "ark is misconfigured" in job["error"]
        assert await gw.balance() == 1000
        ready = (await gw.http.get("/readyz")).json()
        assert ready["providers"]["ark"]["status"] == "misconfigured"


async def test_fewer_images_than_paid_for_are_charged_pro_rata(
    database_url: str, tmp_path: Path
) -> None:
    short = Finished(images=[OutputImage(data=image_bytes((8, 8), "red"))])
    alpha = ScriptedAdapter([short])
    routes = {"gpt-image-1.5": ["alpha:gpt-a"]}
    body = {**BODY, "gptImageParams": {"quality": "low", "number_of_images": 3}}
    async with routed(database_url, tmp_path, {"alpha": alpha}, routes=routes) as gw:
        job_id = await submit(gw, body)
        await gw.drain()
        job = await gw.job(job_id, key=gw.live_key)
        assert job["status"] == "COMPLETED"
        assert len(job["result"]["images"]) == 1
        assert job["creditCost"] == 4  # 12 reserved for three images, one delivered
        assert await gw.balance() == 996


async def test_an_answer_without_images_fails_the_job(database_url: str, tmp_path: Path) -> None:
    alpha = ScriptedAdapter([Finished(images=[])])
    routes = {"gpt-image-1.5": ["alpha:gpt-a"]}
    async with routed(database_url, tmp_path, {"alpha": alpha}, routes=routes) as gw:
        job_id = await submit(gw)
        await gw.drain()
        job = await gw.job(job_id, key=gw.live_key)
        assert job["status"] == "FAILED"
        assert job["error"] == "Provider returned no images"
        assert await gw.balance() == 1000
