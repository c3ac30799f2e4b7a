"""Input images that are our own uploads or outputs are read from storage, never fetched."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any

from imagegate.providers.port import Finished, GenerationRequest, OutputImage
from imagegate.types import FetchedInput, InputFetcher
from tests.images import image_bytes
from tests.integration.conftest import Gateway, open_gateway
from tests.integration.vendors import SyncVendor


class EchoAdapter(SyncVendor):
    """Downloads every input image through the gateway's fetcher and returns them as outputs."""

    name = "echo"

    def __init__(self) -> None:
        super().__init__()
        self.fetch: InputFetcher | None = None
        self.fetched: list[FetchedInput] = []

    async def answer(self, request: GenerationRequest) -> Finished:
        assert self.fetch is not None
        inputs = [await self.fetch(url) for url in request.params.get("input_images") or []]
        self.fetched.extend(inputs)
        return Finished(
            images=[OutputImage(data=item.data, content_type=item.content_type) for item in inputs]
        )


@contextlib.asynccontextmanager
async def echo_gateway(database_url: str, tmp_path: Path) -> Any:
    adapter = EchoAdapter()
    routes = {"gpt-image-1.5": ["echo:echo-1"]}
    async with open_gateway(
        database_url, tmp_path, routes=routes, adapters={"echo": adapter}
    ) as gw:
        adapter.fetch = gw.runtime.providers.context.fetch_input
        yield gw, adapter


async def run(gw: Gateway, *urls: str) -> dict[str, Any]:
    body = {
        "model": "gpt-image-1.5",
        "prompt": "use my picture",
        "gptImageParams": {"quality": "low", "input_images": list(urls)},
    }
    response = await gw.submit(body, key=gw.live_key)
    assert response.status_code == 202, response.text
    await gw.drain()
    return await gw.job(response.json()["jobId"], key=gw.live_key)


async def test_an_upload_and_an_earlier_output_are_read_from_storage(
    database_url: str, tmp_path: Path
) -> None:
    async with echo_gateway(database_url, tmp_path) as (gw, adapter):
        data = image_bytes((48, 32), "orange", "JPEG")
        uploaded = await gw.http.post(
            "/v2/uploads", files={"file": ("me.jpg", data, "image/jpeg")}, headers=gw.headers()
        )
        url = uploaded.json()["url"]
        assert url.startswith("http://testserver/files/uploads/")  # not resolvable: no network

        first = await run(gw, url)
        assert first["status"] == "COMPLETED", first
        assert adapter.fetched[0].data == data
        assert adapter.fetched[0].content_type == "image/jpeg"
        assert first["outputs"][0]["sha256"] == hashlib.sha256(data).hexdigest()

        second = await run(gw, first["result"]["images"][0])
        assert second["status"] == "COMPLETED", second
        assert adapter.fetched[1].data == data


async def test_a_tampered_own_url_fails_the_job_and_refunds(
    database_url: str, tmp_path: Path
) -> None:
    async with echo_gateway(database_url, tmp_path) as (gw, _adapter):
        uploaded = await gw.http.post(
            "/v2/uploads",
            files={"file": ("me.jpg", image_bytes((48, 32), "orange", "JPEG"), "image/jpeg")},
            headers=gw.headers(),
        )
        url = uploaded.json()["url"].replace("uploads/", "uploads/x", 1)
        job = await run(gw, url)
        assert job["status"] == "FAILED"
        assert "invalid or has expired" in job["error"]
        assert job["creditCost"] == 0
        assert await gw.balance() == 1000


async def test_an_input_url_the_outbound_guard_refuses_fails_the_job(
    database_url: str, tmp_path: Path
) -> None:
    async with echo_gateway(database_url, tmp_path) as (gw, _adapter):
        job = await run(gw, "http://169.254.169.254/latest/meta-data/x.png")
        assert job["status"] == "FAILED"
        assert "input image" in job["error"]
        assert await gw.balance() == 1000
