"""``AsyncClient`` against a live gateway: the same resources and errors as ``Client``."""

from __future__ import annotations

import asyncio

import pytest

from imagegate.client import (
    APIConnectionError,
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InsufficientCreditsError,
    Job,
    JobTimeoutError,
    NotFoundError,
    RateLimitError,
)
from tests.images import image_bytes

from .conftest import Gateway

pytestmark = pytest.mark.slow


async def test_jobs_run_concurrently_to_images(gateway: Gateway) -> None:
    seen: list[Job] = []
    async with AsyncClient(gateway.base_url, gateway.test_key) as client:
        jobs = await asyncio.gather(
            *(
                client.images.generate(
                    model="flux-2-pro", prompt=f"p{i}", wait=30, on_progress=seen.append
                )
                for i in range(3)
            )
        )
        assert [job.status for job in jobs] == ["COMPLETED"] * 3
        assert {job.id for job in seen if job.done} == {job.id for job in jobs}
        download = await client.images.download(jobs[0].images[0])
        assert download.content_type is not None and download.content_type.startswith("image/")


async def test_resources_answer_typed(gateway: Gateway) -> None:
    async with AsyncClient(gateway.base_url, gateway.test_key) as client:
        grid = await client.images.generate(model="midjourney", prompt="a castle", wait=30)
        upscale = await client.images.midjourney_action(
            "upsample", grid.id, fields={"index": 1}, wait=30
        )
        assert upscale.status == "COMPLETED" and len(upscale.images) == 1
        walked = [job.id async for job in client.jobs.iterate(model="midjourney", page_size=1)]
        assert walked[:2] == [upscale.id, grid.id]
        again = await client.jobs.get(grid.id)  # result URLs are signed afresh on each read
        assert [o.sha256 for o in again.outputs] == [o.sha256 for o in grid.outputs]
        assert (await client.me()).credits == 500
        assert (await client.models.get("midjourney")).params_key == "midjourneyParams"
        assert "midjourney" in {m.id for m in await client.models.list()}
        upload = await client.uploads.create(image_bytes((16, 16), "red"), filename="in.png")
        assert upload.content_type == "image/png"
        assert (await client.webhooks.deliveries(grid.id))["deliveries"] == []


async def test_each_error_class_comes_back(gateway: Gateway, broke_key: str) -> None:
    async with AsyncClient(gateway.base_url, gateway.test_key) as client:
        with pytest.raises(BadRequestError) as bad:
            await client.images.generate(model="no-such-model", prompt="x")
        assert "model" in bad.value.details
        with pytest.raises(NotFoundError):
            await client.jobs.cancel("01900000-0000-7000-8000-000000000000")
        await client.images.generate(model="flux-2-pro", prompt="a", idempotency_key="async-1")
        with pytest.raises(ConflictError):
            await client.images.generate(model="flux-2-pro", prompt="b", idempotency_key="async-1")
    async with AsyncClient(gateway.base_url, "ig_live_nope") as client:
        with pytest.raises(AuthenticationError):
            await client.jobs.list()
    async with AsyncClient(gateway.base_url, broke_key) as client:
        with pytest.raises(InsufficientCreditsError) as poor:
            await client.images.generate(model="gpt-image-1.5", prompt="x")
        assert poor.value.credits_available == 0


async def test_the_cap_and_a_wait_that_runs_out(stalled: Gateway) -> None:
    async with AsyncClient(stalled.base_url, stalled.test_key, max_retries=0) as client:
        queued = await client.images.generate(model="flux-2-pro", prompt="first")
        try:
            with pytest.raises(RateLimitError) as limited:
                await client.images.generate(model="flux-2-pro", prompt="second")
            assert limited.value.retry_after == 5
            with pytest.raises(JobTimeoutError):
                await client.jobs.wait(queued.id, timeout=0.2)
        finally:
            assert (await client.jobs.cancel(queued.id)).status == "CANCELLED"


async def test_an_unreachable_gateway_is_a_connection_error(refused_url: str) -> None:
    async with AsyncClient(refused_url, "k", max_retries=0) as client:
        with pytest.raises(APIConnectionError):
            await client.me()
