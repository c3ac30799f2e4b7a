"""The BFL adapter against the fake BFL server, in-process through ``httpx2.ASGITransport``."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from PIL import Image
from pydantic import SecretStr

from imagegate.errors import (
    UpstreamMisconfigured,
    UpstreamModerated,
    UpstreamRejected,
    UpstreamRetryable,
    UpstreamTaskLost,
)
from imagegate.providers import bfl
from imagegate.providers.port import (
    Finished,
    GenerationRequest,
    Pending,
    ProviderContext,
    Submitted,
    TaskHandle,
)
from imagegate.settings import ProviderSettings
from imagegate.testing.fake_upstream.bfl import create_app
from imagegate.types import Route
from tests.images import image_bytes
from tests.integration.providers.conftest import (
    adapter_on,
    download,
    generation_request,
    input_fetcher,
    run_to_finish,
)

KEY = "bfl_test_key"


fetch_input = input_fetcher(image_bytes())


def request(model: str, prompt: str = "a red fox", **params: Any) -> GenerationRequest:
    return generation_request(model, Route("bfl", model), prompt, params)


class Harness:
    def __init__(self, app: Any, adapter: bfl.BflAdapter) -> None:
        self.app = app
        self.adapter = adapter

    @property
    def requests(self) -> list[dict[str, Any]]:
        return list(self.app.state.requests)

    async def run(self, req: GenerationRequest, max_polls: int = 10) -> Finished:
        return await run_to_finish(self.adapter, req, max_polls=max_polls)

    async def download(self, url: str | None) -> Image.Image:
        return await download(self.app, url)


@contextlib.asynccontextmanager
async def _harness(
    api_key: str = KEY, options: dict[str, Any] | None = None, **fake: Any
) -> AsyncIterator[Harness]:
    app = create_app(**fake)
    adapter = adapter_on(
        bfl.create_adapter,
        app,
        api_key=api_key,
        base_url="http://api.bfl.test",
        options=options,
        fetch_input=fetch_input,
    )
    try:
        yield Harness(app, adapter)
    finally:
        await adapter.aclose()


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with _harness() as h:
        yield h


async def test_flux2_pro_sends_mapped_payload_and_returns_sample_url(harness: Harness) -> None:
    req = request(
        "flux-2-pro",
        aspect_ratio="16:9",
        resolution="1MP",
        seed=7,
        output_format="png",
        output_quality=80,
        input_images=["https://img.example/a.png", "https://img.example/b.png"],
    )
    finished = await harness.run(req)

    submit = harness.requests[0]
    assert submit["method"] == "POST"
    assert submit["path"] == "/v1/flux-2-pro"
    assert submit["headers"]["x-key"] == KEY
    body = submit["json"]
    assert body["prompt"] == "a red fox"
    assert body["seed"] == 7
    assert body["output_format"] == "png"
    assert body["safety_tolerance"] == 2
    assert body["input_image"] == "https://img.example/a.png"
    assert body["input_image_2"] == "https://img.example/b.png"
    assert body["width"] % 16 == 0 and body["height"] % 16 == 0
    assert body["width"] / body["height"] == pytest.approx(16 / 9, rel=0.02)
    assert 0.9e6 < body["width"] * body["height"] < 1.1e6
    assert "output_quality" not in body

    poll = harness.requests[1]
    assert poll["path"] == "/v1/get_result"
    assert poll["headers"]["x-key"] == KEY

    assert finished.served_model == "flux-2-pro"
    assert len(finished.images) == 1
    image = finished.images[0]
    assert image.content_type == "image/png" and image.url is not None
    picture = await harness.download(image.url)
    assert picture.format == "PNG"
    assert picture.width / picture.height == pytest.approx(16 / 9, rel=0.05)


async def test_flux2_flex_sends_steps_guidance_and_upsampling(harness: Harness) -> None:
    req = request(
        "flux-2-flex", width=1024, height=768, steps=30, guidance=4.5, prompt_upsampling=False
    )
    finished = await harness.run(req)
    body = harness.requests[0]["json"]
    assert harness.requests[0]["path"] == "/v1/flux-2-flex"
    assert (body["width"], body["height"]) == (1024, 768)
    assert (body["steps"], body["guidance"], body["prompt_upsampling"]) == (30, 4.5, False)
    assert body["output_format"] == "jpeg"
    assert finished.images[0].content_type == "image/jpeg"
    picture = await harness.download(str(finished.images[0].url))
    assert picture.format == "JPEG"


async def test_flux_11_pro_maps_catalog_id_sizes_and_inlines_redux_prompt(
    harness: Harness,
) -> None:
    req = request(
        "flux-1.1-pro",
        aspect_ratio="3:2",
        prompt_upsampling=True,
        output_format="jpg",
        image_prompt="https://img.example/redux.png",
    )
    await harness.run(req)
    submit = harness.requests[0]
    assert submit["path"] == "/v1/flux-pro-1.1"
    body = submit["json"]
    assert body["width"] % 32 == 0 and body["height"] % 32 == 0
    assert 256 <= body["height"] < body["width"] <= 1440
    assert body["prompt_upsampling"] is True
    assert body["output_format"] == "jpeg"
    assert base64.b64decode(body["image_prompt"]) == image_bytes()


async def test_ultra_sends_aspect_ratio_raw_and_strength(harness: Harness) -> None:
    req = request(
        "flux-1.1-pro-ultra",
        aspect_ratio="21:9",
        raw=True,
        image_prompt="https://img.example/redux.png",
        image_prompt_strength=0.4,
        output_format="webp",
    )
    finished = await harness.run(req)
    body = harness.requests[0]["json"]
    assert harness.requests[0]["path"] == "/v1/flux-pro-1.1-ultra"
    assert body["aspect_ratio"] == "21:9"
    assert body["raw"] is True
    assert body["image_prompt_strength"] == 0.4
    assert "width" not in body
    picture = await harness.download(str(finished.images[0].url))
    assert picture.format == "WEBP"
    assert picture.width / picture.height == pytest.approx(21 / 9, rel=0.05)


async def test_slow_task_reports_pending_progress_then_finishes(harness: Harness) -> None:
    req = request("flux-2-max", prompt="slow lighthouse")
    submitted = await harness.adapter.submit(req)
    assert isinstance(submitted, Submitted)
    assert submitted.state["polling_url"].endswith(f"/v1/get_result?id={submitted.task_id}")
    handle = TaskHandle(submitted.task_id, submitted.state)
    progress = []
    while isinstance(polled := await harness.adapter.poll(req, handle), Pending):
        progress.append(polled.progress)
    assert progress == [25, 50, 75]
    assert isinstance(polled, Finished)


@pytest.mark.parametrize(
    ("prompt", "where"),
    [("moderate-me please", "request"), ("moderate-output please", "generated image")],
)
async def test_moderated_statuses_raise_moderated(
    harness: Harness, prompt: str, where: str
) -> None:
    with pytest.raises(UpstreamModerated) as caught:
        await harness.run(request("flux-2-pro", prompt=prompt))
    assert where in caught.value.message


async def test_error_status_fails_with_vendor_message(harness: Harness) -> None:
    with pytest.raises(UpstreamRejected, match="internal_error"):
        await harness.run(request("flux-2-pro", prompt="fail-me"))


async def test_rate_limit_is_retryable_with_retry_after(harness: Harness) -> None:
    with pytest.raises(UpstreamRetryable) as caught:
        await harness.adapter.submit(request("flux-2-pro", prompt="rate-limit-me"))
    assert caught.value.retry_after == 7
    assert "active tasks" in caught.value.message


async def test_server_error_is_retryable(harness: Harness) -> None:
    with pytest.raises(UpstreamRetryable):
        await harness.adapter.submit(request("flux-2-pro", prompt="server-error"))


async def test_insufficient_credits_is_rejected(harness: Harness) -> None:
    with pytest.raises(UpstreamRejected, match="Insufficient credits"):
        await harness.adapter.submit(request("flux-2-pro", prompt="no-credits"))


async def test_wrong_key_is_misconfigured() -> None:
    async with _harness(api_key="bfl_wrong") as h:
        with pytest.raises(UpstreamMisconfigured, match="Not authenticated"):
            await h.adapter.submit(request("flux-2-pro"))


async def test_validation_error_passes_vendor_message(harness: Harness) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        await harness.adapter.submit(request("flux-1.1-pro-ultra", aspect_ratio="32:9"))
    assert "aspect_ratio must be between 21:9 and 9:21" in caught.value.message


async def test_unknown_task_is_lost(harness: Harness) -> None:
    handle = TaskHandle("no-such-task", {"polling_url": "http://api.bfl.test/v1/get_result?id=no"})
    with pytest.raises(UpstreamTaskLost):
        await harness.adapter.poll(request("flux-2-pro"), handle)


async def test_regional_polling_url_is_followed() -> None:
    async with _harness(polling_base="https://api.eu1.bfl.ai") as h:
        req = request("flux-2-pro")
        submitted = await h.adapter.submit(req)
        assert isinstance(submitted, Submitted)
        assert submitted.state["polling_url"].startswith("https://api.eu1.bfl.ai/v1/get_result")
        await h.adapter.poll(req, TaskHandle(submitted.task_id, submitted.state))
        poll = h.requests[-1]
        assert poll["headers"]["host"] == "api.eu1.bfl.ai"


async def test_untrusted_polling_url_is_not_sent_our_key() -> None:
    async with _harness(polling_base="https://attacker.example") as h:
        req = request("flux-2-pro")
        submitted = await h.adapter.submit(req)
        assert isinstance(submitted, Submitted)
        finished = await h.adapter.poll(req, TaskHandle(submitted.task_id, submitted.state))
        assert isinstance(finished, Finished)
        poll = h.requests[-1]
        assert poll["headers"]["host"] == "api.bfl.test"
        assert poll["query"] == {"id": submitted.task_id}


async def test_too_many_input_images_is_rejected_before_sending(harness: Harness) -> None:
    urls = [f"https://img.example/{n}.png" for n in range(9)]
    with pytest.raises(UpstreamRejected, match="at most 8"):
        await harness.adapter.submit(request("flux-2-pro", input_images=urls))
    assert harness.requests == []


async def test_inline_inputs_option_sends_base64() -> None:
    async with _harness(options={"inline_inputs": True}) as h:
        await h.run(request("flux-2-pro", input_images=["https://img.example/a.png"]))
        assert base64.b64decode(h.requests[0]["json"]["input_image"]) == image_bytes()


async def test_read_timeout_after_submit_is_not_retried() -> None:
    """A submit BFL may have accepted (and billed) is not sent twice."""

    def timeout(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("no answer", request=request)

    context = ProviderContext(fetch_input=fetch_input, transport=httpx2.MockTransport(timeout))
    adapter = bfl.create_adapter(ProviderSettings(api_key=SecretStr(KEY)), context)
    try:
        with pytest.raises(UpstreamRejected, match="may already have charged"):
            await adapter.submit(request("flux-2-pro"))
    finally:
        await adapter.aclose()
