"""The Gemini adapter against the fake Gemini API, in-process through an ASGI transport."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from PIL import Image

from imagegate.errors import (
    UpstreamMisconfigured,
    UpstreamModerated,
    UpstreamRejected,
    UpstreamRetryable,
)
from imagegate.providers.gemini import GeminiAdapter, create_adapter
from imagegate.providers.port import Finished, GenerationRequest, ProviderContext
from imagegate.settings import ProviderSettings
from imagegate.testing.fake_upstream.gemini import API_KEY, create_app
from imagegate.types import Route
from tests.images import image_bytes
from tests.integration.providers.conftest import adapter_on, generation_request, input_fetcher

INPUT_PNG = image_bytes((20, 10), (200, 10, 10))


fetch_input = input_fetcher(INPUT_PNG)


@pytest.fixture
def fake() -> FastAPI:
    return create_app()


async def _adapter(
    fake: FastAPI, *, key: str | None = API_KEY, options: Mapping[str, Any] | None = None
) -> GeminiAdapter:
    return adapter_on(create_adapter, fake, api_key=key, options=options, fetch_input=fetch_input)


@pytest.fixture
async def adapter(fake: FastAPI) -> AsyncIterator[GeminiAdapter]:
    adapter = await _adapter(fake)
    yield adapter
    await adapter.aclose()


def _request(
    prompt: str = "a red fox",
    params: Mapping[str, Any] | None = None,
    *,
    model: str = "nano-banana-pro",
    upstream: str = "gemini-3-pro-image",
    outputs: int = 1,
) -> GenerationRequest:
    return generation_request(model, Route("gemini", upstream), prompt, params, outputs=outputs)


async def test_sends_the_documented_request_and_decodes_the_image(
    adapter: GeminiAdapter, fake: FastAPI
) -> None:
    params = {
        "aspect_ratio": "16:9",
        "resolution": "2K",
        "output_format": "png",
        "image_input": ["https://example.test/a.png", "https://example.test/b.png"],
        "google_search": True,
        "image_search": True,
    }
    result = await adapter.submit(_request(params=params))

    assert isinstance(result, Finished)
    assert result.served_model == "gemini-3-pro-image"
    [image] = result.images
    assert image.content_type == "image/png"
    assert image.data is not None
    assert Image.open(io.BytesIO(image.data)).size == (192, 108)

    [sent] = fake.state.requests
    assert sent["path"] == "/v1beta/models/gemini-3-pro-image:generateContent"
    assert sent["headers"]["x-goog-api-key"] == API_KEY
    body = sent["json"]
    parts = body["contents"][0]["parts"]
    assert body["contents"][0]["role"] == "user"
    assert parts[0] == {"text": "a red fox"}
    assert [p["inlineData"]["mimeType"] for p in parts[1:]] == ["image/png", "image/png"]
    assert base64.b64decode(parts[1]["inlineData"]["data"]) == INPUT_PNG
    assert body["generationConfig"] == {
        "responseModalities": ["TEXT", "IMAGE"],
        "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"},
    }
    assert body["tools"] == [
        {"googleSearch": {"searchTypes": {"webSearch": {}, "imageSearch": {}}}}
    ]


async def test_one_call_per_requested_output_and_thoughts_are_skipped(
    adapter: GeminiAdapter, fake: FastAPI
) -> None:
    result = await adapter.submit(_request("thinking cat", {"aspect_ratio": "1:1"}, outputs=2))

    assert isinstance(result, Finished)
    assert len(result.images) == 2
    for image in result.images:
        assert image.data is not None
        assert Image.open(io.BytesIO(image.data)).size == (128, 128)
    assert len(fake.state.requests) == 2
    assert "tools" not in fake.state.requests[0]["json"]


async def test_nano_banana_omits_image_size_and_512px_maps(fake: FastAPI) -> None:
    adapter = await _adapter(fake)
    try:
        await adapter.submit(
            _request(params={"resolution": "1K"}, upstream="gemini-2.5-flash-image")
        )
        await adapter.submit(
            _request(params={"resolution": "512px"}, upstream="gemini-3.1-flash-image")
        )
    finally:
        await adapter.aclose()
    first, second = (r["json"]["generationConfig"] for r in fake.state.requests)
    assert "imageConfig" not in first
    assert second["imageConfig"] == {"imageSize": "512"}


async def test_options_models_replaces_a_retired_id(fake: FastAPI) -> None:
    retired = "gemini-2.0-flash-preview-image-generation"
    adapter = await _adapter(fake, options={"models": {retired: "gemini-nano-banana-2.1"}})
    try:
        result = await adapter.submit(_request(upstream=retired))
    finally:
        await adapter.aclose()
    assert isinstance(result, Finished)
    assert result.served_model == "gemini-nano-banana-2.1"
    assert fake.state.requests[0]["path"].endswith("/gemini-nano-banana-2.1:generateContent")


async def test_a_retired_id_is_a_misconfiguration(adapter: GeminiAdapter) -> None:
    with pytest.raises(UpstreamMisconfigured, match="is no longer available"):
        await adapter.submit(_request(upstream="gemini-2.0-flash-preview-image-generation"))


@pytest.mark.parametrize(
    ("prompt", "reason"),
    [("moderate-me please", "PROHIBITED_CONTENT"), ("unsafe-image please", "IMAGE_SAFETY")],
)
async def test_policy_blocks_are_moderation(
    adapter: GeminiAdapter, prompt: str, reason: str
) -> None:
    with pytest.raises(UpstreamModerated, match=reason):
        await adapter.submit(_request(prompt))


async def test_no_image_is_a_rejection_with_the_model_text(adapter: GeminiAdapter) -> None:
    with pytest.raises(UpstreamRejected, match="NO_IMAGE: I can only describe it"):
        await adapter.submit(_request("no-image please"))


async def test_rate_limit_uses_google_retry_info(adapter: GeminiAdapter) -> None:
    with pytest.raises(UpstreamRetryable) as caught:
        await adapter.submit(_request("rate-limit-me"))
    assert caught.value.retry_after == 7.0
    assert "exceeded your current quota" in caught.value.message


async def test_rate_limit_prefers_retry_after_header(adapter: GeminiAdapter) -> None:
    with pytest.raises(UpstreamRetryable) as caught:
        await adapter.submit(_request("retry-after-me"))
    assert caught.value.retry_after == 11.0


@pytest.mark.parametrize("prompt", ["server-error", "overloaded"])
async def test_server_errors_are_retryable(adapter: GeminiAdapter, prompt: str) -> None:
    with pytest.raises(UpstreamRetryable):
        await adapter.submit(_request(prompt))


async def test_invalid_argument_passes_google_message(adapter: GeminiAdapter) -> None:
    with pytest.raises(UpstreamRejected, match="Unsupported aspect ratio: 7:3"):
        await adapter.submit(_request(params={"aspect_ratio": "7:3"}))


@pytest.mark.parametrize(("key", "message"), [("wrong", "API key not valid"), ("", "unregistered")])
async def test_bad_or_missing_key_is_a_misconfiguration(
    fake: FastAPI, key: str, message: str
) -> None:
    adapter = await _adapter(fake, key=key)
    try:
        with pytest.raises(UpstreamMisconfigured, match=message):
            await adapter.submit(_request())
    finally:
        await adapter.aclose()


async def test_read_timeout_after_sending_is_not_retried() -> None:
    def timeout(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("timed out", request=request)

    context = ProviderContext(fetch_input=fetch_input, transport=httpx2.MockTransport(timeout))
    adapter = create_adapter(ProviderSettings(api_key=API_KEY), context)
    try:
        with pytest.raises(UpstreamRejected, match="may already have charged"):
            await adapter.submit(_request())
    finally:
        await adapter.aclose()
