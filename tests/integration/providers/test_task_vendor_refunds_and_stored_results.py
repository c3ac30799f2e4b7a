"""Task-queue vendors through the whole gateway: every vendor's fake, the worker, the ledger.

Each case runs one job with live keys forced onto a single route (no other route, no substitute)
and every adapter talking to ``imagegate.testing.vendors``. A moderated answer, whether the
vendor refuses the prompt at submit or flags the output while the task runs, must end the job
``FAILED`` with a content-policy error, cost 0, and the reserved credits back on the balance.
Result URLs that expire (BFL, Replicate) must be stored while the job finishes.
One case per vendor, mixing refusals at submit and flags raised while the task runs; the other
moderation signals of each vendor are covered by its adapter test.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import httpx2
import pytest
from PIL import Image

from imagegate.testing.vendors import VendorTransport
from tests.integration.conftest import Gateway, on_fake_vendors, one_route

CREDITS = 1000


def _open(
    database_url: str, data_dir: Path, vendors: VendorTransport, model: str, route: str
) -> contextlib.AbstractAsyncContextManager[Gateway]:
    settings = one_route(model, route)
    return on_fake_vendors(database_url, data_dir, vendors, credits=CREDITS, **settings)


async def _run(gateway: Gateway, model: str, prompt: str) -> dict[str, Any]:
    accepted = await gateway.submit({"model": model, "prompt": prompt}, key=gateway.live_key)
    assert accepted.status_code == 202, accepted.text
    await gateway.drain()
    return await gateway.job(accepted.json()["jobId"], key=gateway.live_key)


MODERATED = [
    pytest.param("flux-2-pro", "bfl:flux-2-pro", "moderate-me", id="bfl"),
    pytest.param(
        "flux-2-pro", "replicate:black-forest-labs/flux-2-pro", "moderate-me", id="replicate"
    ),
    pytest.param("flux-2-pro", "fal:fal-ai/flux-2-pro", "moderate-me", id="fal"),
    pytest.param("kling-image", "kling:kling-image", "moderate-output", id="kling"),
    pytest.param("qwen-image", "dashscope:qwen-image", "moderate-output", id="dashscope"),
    pytest.param("midjourney", "midjourney:midjourney", "moderate-me", id="midjourney"),
]


@pytest.mark.parametrize(("model", "route", "word"), MODERATED)
async def test_moderated_job_fails_free_and_refunds(
    sqlite_url: str, tmp_path: Path, model: str, route: str, word: str
) -> None:
    vendors = VendorTransport()
    async with _open(sqlite_url, tmp_path / "data", vendors, model, route) as gateway:
        job = await _run(gateway, model, f"a lighthouse at dawn {word}")
        assert job["status"] == "FAILED", job
        assert "content policy" in job["error"].lower(), job["error"]
        assert job["creditCost"] == 0
        assert await gateway.balance() == CREDITS
        assert not (job.get("result") or {}).get("images")
    # The vendor was really asked: the refusal came from its protocol, not from a shortcut.
    vendor = route.partition(":")[0]
    assert any(r["method"] == "POST" for r in vendors.app(vendor).state.requests)


EXPIRING = [
    pytest.param("bfl:flux-2-pro", "/results/", 403, id="bfl"),
    pytest.param("replicate:black-forest-labs/flux-2-pro", "/delivery/", 404, id="replicate"),
]


@pytest.mark.parametrize(("route", "prefix", "expired_status"), EXPIRING)
async def test_expiring_result_urls_are_stored_at_once(
    sqlite_url: str, tmp_path: Path, route: str, prefix: str, expired_status: int
) -> None:
    """BFL samples die after 10 minutes, Replicate outputs after an hour: the worker must
    download them while the job finishes and serve its own copy from then on.

    The fakes are steered (``expire-fast``) to expire each result URL right after its first
    download, so any later fetch of the vendor URL, by the gateway or anyone, fails.
    """
    vendors = VendorTransport()
    vendor = route.partition(":")[0]
    async with _open(sqlite_url, tmp_path / "data", vendors, "flux-2-pro", route) as gateway:
        job = await _run(gateway, "flux-2-pro", "a lighthouse at dawn expire-fast")
        assert job["status"] == "COMPLETED", job
        downloads = [r for r in vendors.app(vendor).state.requests if r["path"].startswith(prefix)]
        assert len(downloads) == 1, downloads  # fetched once, while the job ran
        fetched = downloads[0]
        query = fetched.get("query") or {}
        vendor_url = httpx2.URL(f"https://{fetched['headers']['host']}{fetched['path']}").copy_with(
            params=query
        )
        async with httpx2.AsyncClient(transport=vendors) as client:
            assert (await client.get(vendor_url)).status_code == expired_status

        images = job["result"]["images"]
        assert len(images) == 1
        for _ in range(2):  # served from our storage, again and again
            response = await gateway.http.get(images[0])
            assert response.status_code == 200
            with Image.open(io.BytesIO(response.content)) as picture:
                picture.verify()
