"""Outputs fetched by URL are streamed to storage: the size cap holds while reading, the image is
measured from its header, and an output that can never be accepted fails the job at once.

The result host is ``imagegate.testing.large_images`` on a real socket (uvicorn in a thread), so
``Content-Length``, chunked bodies and a download cut short behave as they do with a vendor.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from imagegate.providers.port import (
    Finished,
    GenerationRequest,
    OutputImage,
)
from imagegate.queue.ingest import SPOOL_BYTES
from imagegate.store import jobs as job_store
from imagegate.testing.large_images import create_app, large_png
from tests.integration.conftest import Gateway, open_gateway
from tests.integration.vendors import SyncVendor

pytestmark = pytest.mark.timeout(60)

BODY = {"model": "gpt-image-1.5", "prompt": "p", "gptImageParams": {"quality": "low"}}
LARGE = 3 * SPOOL_BYTES  # spooled to a temporary file, uploaded in parts where there are parts
OVERSIZED = 24_000_000
CAP = 2_000_000


@pytest.fixture(scope="module")
def image_host() -> Iterator[tuple[str, Any]]:
    """The large-image host on 127.0.0.1: its base URL and its app (``app.state.sent``)."""
    app = create_app()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "the image host did not start"
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(10)


class UrlVendor(SyncVendor):
    """A synchronous vendor whose answer is a result URL; it counts the paid calls."""

    name = "urls"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    async def answer(self, request: GenerationRequest) -> Finished:
        return Finished(images=[OutputImage(url=self.url)])


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Where the gateway stores outputs: a local directory, or a SeaweedFS bucket."""
    if request.param == "local":
        return {"storage_url": (tmp_path / "files").as_uri()}
    settings: dict[str, Any] = request.getfixturevalue("s3_storage_settings")
    return settings


@contextlib.asynccontextmanager
async def url_gateway(
    database_url: str, tmp_path: Path, vendor: UrlVendor, **settings: Any
) -> AsyncIterator[Gateway]:
    async with open_gateway(
        database_url,
        tmp_path / "data",
        routes={"gpt-image-1.5": ["urls:model-x"]},
        adapters={"urls": vendor},
        **settings,
    ) as gw:
        yield gw


async def run_one(gw: Gateway) -> dict[str, Any]:
    response = await gw.submit(BODY, key=gw.live_key)
    assert response.status_code == 202, response.text
    await gw.drain()
    return await gw.job(response.json()["jobId"], key=gw.live_key)


async def test_a_large_output_is_streamed_to_storage_measured_from_its_header(
    database_url: str,
    tmp_path: Path,
    storage: dict[str, Any],
    image_host: tuple[str, Any],
) -> None:
    base, _app = image_host
    vendor = UrlVendor(f"{base}/png/{LARGE}.png?chunked=1")
    expected = large_png(LARGE)
    async with url_gateway(database_url, tmp_path, vendor, **storage) as gw:
        job = await run_one(gw)
        assert job["status"] == "COMPLETED", job
        async with gw.runtime.db.read() as conn:
            row = await job_store.get_job(conn, job["id"])
        assert row is not None and row.outputs is not None
        (output,) = row.outputs
        assert (output.content_type, output.byte_size) == ("image/png", len(expected))
        assert (output.width, output.height) == (2000, -(-LARGE // 6001))
        assert output.sha256 == hashlib.sha256(expected).hexdigest()
        assert await gw.runtime.store.get(output.key) == expected


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("", f"over {CAP} bytes (Content-Length {len(large_png(OVERSIZED))})"),
        ("?chunked=1", f"over {CAP} bytes"),
    ],
    ids=["content-length", "counted-mid-stream"],
)
async def test_an_output_over_the_cap_stops_the_download_and_fails_the_job_refunded(
    database_url: str, tmp_path: Path, image_host: tuple[str, Any], query: str, error: str
) -> None:
    base, app = image_host
    path = f"/png/{OVERSIZED}.png"
    app.state.sent.pop(path, None)
    vendor = UrlVendor(f"{base}{path}{query}")
    async with url_gateway(database_url, tmp_path, vendor, output_max_bytes=CAP) as gw:
        before = await gw.balance()
        job = await run_one(gw)
        assert job["status"] == "FAILED"
        assert job["error"].startswith(f"Provider returned an image {error}")
        assert vendor.submits == 1
        assert await gw.balance() == before
    # The host stopped well before the whole body: the gateway read no further than the cap.
    assert app.state.sent.get(path, 0) < OVERSIZED // 2


async def test_a_decompression_bomb_by_url_fails_at_once_refunded_after_one_call(
    database_url: str, tmp_path: Path, image_host: tuple[str, Any]
) -> None:
    base, _app = image_host
    vendor = UrlVendor(f"{base}/bomb/100000x100000.png")
    async with url_gateway(database_url, tmp_path, vendor) as gw:
        before = await gw.balance()
        job = await run_one(gw)
        assert job["status"] == "FAILED"
        assert "too many pixels" in job["error"]
        assert vendor.submits == 1
        assert await gw.balance() == before
