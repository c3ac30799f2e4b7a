"""The Ark (Seedream) adapter against the fake ModelArk API, in-process via an ASGI transport."""

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
from imagegate.providers.ark import ArkAdapter, ark_size, create_adapter
from imagegate.providers.port import Finished, GenerationRequest, ProviderContext
from imagegate.settings import ProviderSettings
from imagegate.testing.fake_upstream.ark import API_KEY, create_app
from imagegate.types import Route
from tests.images import image_bytes
from tests.integration.providers.conftest import adapter_on, generation_request, input_fetcher

INPUT_PNG = image_bytes((16, 16), (1, 2, 3))


fetch_input = input_fetcher(INPUT_PNG)


@pytest.fixture
def fake() -> FastAPI:
    return create_app()


def _adapter(
    fake: FastAPI, *, key: str = API_KEY, options: Mapping[str, Any] | None = None
) -> ArkAdapter:
    return adapter_on(create_adapter, fake, api_key=key, options=options, fetch_input=fetch_input)


@pytest.fixture
async def adapter(fake: FastAPI) -> AsyncIterator[ArkAdapter]:
    adapter = _adapter(fake)
    yield adapter
    await adapter.aclose()


def _request(
    prompt: str = "a paper boat",
    params: Mapping[str, Any] | None = None,
    *,
    upstream: str = "seedream-4-0-250828",
    outputs: int = 1,
) -> GenerationRequest:
    return generation_request("seedream-4", Route("ark", upstream), prompt, params, outputs=outputs)


def _size_of(data: bytes | None) -> tuple[int, int]:
    assert data is not None
    return Image.open(io.BytesIO(data)).size


async def test_sends_the_documented_request_and_decodes_b64(
    adapter: ArkAdapter, fake: FastAPI
) -> None:
    params = {
        "aspect_ratio": "16:9",
        "size": "2K",
        "seed": 5,
        "guidance_scale": 3.5,
        "output_format": "png",
        "enhance_prompt": False,
        "image_input": ["https://in.test/a.png", "https://in.test/b.png"],
    }
    result = await adapter.submit(_request(params=params))

    assert isinstance(result, Finished)
    assert result.served_model == "seedream-4-0-250828"
    [image] = result.images
    assert image.content_type == "image/png"
    assert _size_of(image.data) == (128, 72)

    [sent] = fake.state.requests
    assert sent["path"] == "/api/v3/images/generations"
    assert sent["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert sent["headers"]["host"] == "ark.ap-southeast.bytepluses.com"
    assert sent["json"] == {
        "model": "seedream-4-0-250828",
        "prompt": "a paper boat",
        "response_format": "b64_json",
        "watermark": False,
        "size": "2816x1584",
        "seed": 5,
        "guidance_scale": 3.5,
        "output_format": "png",
        "optimize_prompt": False,
        "image": ["https://in.test/a.png", "https://in.test/b.png"],
    }


async def test_url_mode_inline_inputs_and_volcengine_region(fake: FastAPI) -> None:
    options = {
        "region": "volcengine",
        "response_format": "url",
        "inline_inputs": True,
        "watermark": True,
        "models": {"seedream-4-0-250828": "doubao-seedream-4-0-250828"},
    }
    adapter = _adapter(fake, options=options)
    try:
        result = await adapter.submit(_request(params={"image_input": ["https://in.test/a.png"]}))
    finally:
        await adapter.aclose()

    assert isinstance(result, Finished)
    [image] = result.images
    assert image.url is not None and image.content_type == "image/jpeg"
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=fake)) as client:
        download = await client.get(image.url)
    assert Image.open(io.BytesIO(download.content)).format == "JPEG"
    [sent] = fake.state.requests
    assert sent["headers"]["host"] == "ark.cn-beijing.volces.com"
    body = sent["json"]
    assert body["model"] == "doubao-seedream-4-0-250828"
    assert body["watermark"] is True and body["response_format"] == "url"
    assert body["image"] == "data:image/png;base64," + base64.b64encode(INPUT_PNG).decode()


async def test_several_outputs_use_sequential_generation(
    adapter: ArkAdapter, fake: FastAPI
) -> None:
    result = await adapter.submit(_request(params={"size": "2K"}, outputs=3))

    assert isinstance(result, Finished)
    assert len(result.images) == 3
    [sent] = fake.state.requests
    assert sent["json"]["sequential_image_generation"] == "auto"
    assert sent["json"]["sequential_image_generation_options"] == {"max_images": 3}


async def test_a_short_group_is_topped_up_with_single_calls(
    adapter: ArkAdapter, fake: FastAPI
) -> None:
    result = await adapter.submit(_request("fewer-images", {"size": "2K"}, outputs=3))

    assert isinstance(result, Finished)
    assert len(result.images) == 3
    first, *rest = (r["json"] for r in fake.state.requests)
    assert first["sequential_image_generation"] == "auto"
    assert len(rest) == 2
    assert all("sequential_image_generation" not in body for body in rest)


async def test_models_without_group_mode_make_one_call_per_output(
    adapter: ArkAdapter, fake: FastAPI
) -> None:
    params = {"size": "regular", "aspect_ratio": "3:2"}
    result = await adapter.submit(
        _request(params=params, upstream="seedream-3-0-t2i-250415", outputs=2)
    )

    assert isinstance(result, Finished)
    assert len(result.images) == 2
    bodies = [r["json"] for r in fake.state.requests]
    assert len(bodies) == 2
    assert all("sequential_image_generation" not in body for body in bodies)
    assert bodies[0]["size"] == "1248x832"


def test_size_mapping() -> None:
    assert ark_size({"width": 1500, "height": 2000, "aspect_ratio": "custom"}) == "1500x2000"
    assert ark_size({"size": "4K", "aspect_ratio": "1:1"}) == "4096x4096"
    assert ark_size({"size": "2K"}) == "2K"
    assert ark_size({"resolution": "2K", "aspect_ratio": "9:16"}) == "1584x2816"
    assert ark_size({"size": "big", "aspect_ratio": "16:9"}) == "2048x1152"
    assert ark_size({"size": "small"}) == "512x512"
    assert ark_size({"size": "1024x768"}) == "1024x768"
    assert ark_size({}) is None


@pytest.mark.parametrize(
    ("prompt", "code"),
    [
        ("moderate-me", "InputTextSensitiveContentDetected"),
        ("unsafe-output", "OutputImageSensitiveContentDetected"),
    ],
)
async def test_sensitive_content_codes_are_moderation(
    adapter: ArkAdapter, prompt: str, code: str
) -> None:
    with pytest.raises(UpstreamModerated, match=code):
        await adapter.submit(_request(prompt))


async def test_a_moderated_item_in_a_group_is_moderation(adapter: ArkAdapter) -> None:
    with pytest.raises(UpstreamModerated, match="OutputImageSensitiveContentDetected"):
        await adapter.submit(_request("unsafe-second", {"size": "2K"}, outputs=2))


async def test_rate_limit_is_retryable_with_retry_after(adapter: ArkAdapter) -> None:
    with pytest.raises(UpstreamRetryable) as caught:
        await adapter.submit(_request("rate-limit-me"))
    assert caught.value.retry_after == 3.0
    assert "RateLimitExceeded.EndpointRPMExceeded" in caught.value.message


async def test_server_error_is_retryable(adapter: ArkAdapter) -> None:
    with pytest.raises(UpstreamRetryable):
        await adapter.submit(_request("server-error"))


async def test_invalid_parameter_passes_ark_message(adapter: ArkAdapter) -> None:
    with pytest.raises(UpstreamRejected, match="InvalidParameter: The size 1K is not supported"):
        await adapter.submit(_request(params={"size": "1K"}, upstream="seedream-4-5-251128"))


async def test_unknown_model_is_a_misconfiguration(adapter: ArkAdapter) -> None:
    with pytest.raises(UpstreamMisconfigured, match=r"options\.models"):
        await adapter.submit(_request(upstream="seedream-9"))


async def test_wrong_key_is_a_misconfiguration(fake: FastAPI) -> None:
    adapter = _adapter(fake, key="nope")
    try:
        with pytest.raises(UpstreamMisconfigured, match="AuthenticationError"):
            await adapter.submit(_request())
    finally:
        await adapter.aclose()


def test_an_unknown_region_is_refused() -> None:
    context = ProviderContext(fetch_input=fetch_input)
    with pytest.raises(ValueError, match="unknown region"):
        create_adapter(ProviderSettings(api_key=API_KEY, options={"region": "mars"}), context)
