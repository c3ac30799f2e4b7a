"""The Ideogram adapter against the fake Ideogram API, in-process through an ASGI transport."""

from __future__ import annotations

import io
import json
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
from imagegate.providers.ideogram import IdeogramAdapter, create_adapter
from imagegate.providers.port import Finished, GenerationRequest
from imagegate.testing.fake_upstream.ideogram import API_KEY, create_app
from imagegate.types import FetchedInput, Route
from tests.images import image_bytes
from tests.integration.providers.conftest import adapter_on, generation_request

INPUT_PNG = image_bytes((24, 16), (10, 200, 10))
fetched: list[str] = []


async def fetch_input(url: str) -> FetchedInput:
    fetched.append(url)
    return FetchedInput(data=INPUT_PNG, content_type="image/png", url=url)


@pytest.fixture
def fake() -> FastAPI:
    fetched.clear()
    return create_app()


def _adapter(fake: FastAPI, *, key: str = API_KEY) -> IdeogramAdapter:
    return adapter_on(create_adapter, fake, api_key=key, fetch_input=fetch_input)


@pytest.fixture
async def adapter(fake: FastAPI) -> AsyncIterator[IdeogramAdapter]:
    adapter = _adapter(fake)
    yield adapter
    await adapter.aclose()


def _request(
    prompt: str = "a neon sign that says hello",
    params: Mapping[str, Any] | None = None,
    *,
    model: str = "ideogram-v3-turbo",
    upstream: str = "V_3_TURBO",
    outputs: int = 1,
) -> GenerationRequest:
    return generation_request(model, Route("ideogram", upstream), prompt, params, outputs=outputs)


async def _download(fake: FastAPI, url: str) -> Image.Image:
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=fake)) as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


async def test_v3_generate_is_multipart_with_translated_params(
    adapter: IdeogramAdapter, fake: FastAPI
) -> None:
    params = {
        "aspect_ratio": "16:9",
        "seed": 42,
        "style_type": "Design",
        "style_preset": "Pop Art",
        "magic_prompt_option": "Off",
        "negative_prompt": "blurry",
        "style_reference_images": ["https://in.test/s1.png", "https://in.test/s2.png"],
        "resolution": "None",
    }
    result = await adapter.submit(_request(params=params, outputs=2))

    assert isinstance(result, Finished)
    assert result.served_model == "V_3_TURBO"
    assert len(result.images) == 2
    for output in result.images:
        assert output.url is not None
        assert (await _download(fake, output.url)).size == (128, 72)

    [sent] = fake.state.requests
    assert sent["path"] == "/v1/ideogram-v3/generate"
    assert sent["headers"]["api-key"] == API_KEY
    assert sent["headers"]["content-type"].startswith("multipart/form-data")
    assert sent["form"] == {
        "prompt": "a neon sign that says hello",
        "num_images": "2",
        "rendering_speed": "TURBO",
        "magic_prompt": "OFF",
        "seed": "42",
        "style_type": "DESIGN",
        "style_preset": "POP_ART",
        "aspect_ratio": "16x9",
        "negative_prompt": "blurry",
    }
    refs = sent["files"]["style_reference_images"]
    assert [(f["content_type"], f["size"]) for f in refs] == [("image/png", len(INPUT_PNG))] * 2
    assert fetched == ["https://in.test/s1.png", "https://in.test/s2.png"]


async def test_character_uses_v3_with_the_reference_and_chosen_speed(
    adapter: IdeogramAdapter, fake: FastAPI
) -> None:
    params = {"character_reference_image": "https://in.test/me.png", "rendering_speed": "quality"}
    result = await adapter.submit(
        _request(params=params, model="ideogram-character", upstream="V_3")
    )

    assert isinstance(result, Finished)
    [sent] = fake.state.requests
    assert sent["form"]["rendering_speed"] == "QUALITY"
    assert len(sent["files"]["character_reference_images"]) == 1


async def test_v3_edit_sends_image_and_mask_without_shape_fields(
    adapter: IdeogramAdapter, fake: FastAPI
) -> None:
    params = {
        "image": "https://in.test/src.png",
        "mask": "https://in.test/mask.png",
        "aspect_ratio": "1:1",
    }
    result = await adapter.submit(_request(params=params, upstream="V_3_QUALITY"))

    assert isinstance(result, Finished)
    [sent] = fake.state.requests
    assert sent["path"] == "/v1/ideogram-v3/edit"
    assert set(sent["files"]) == {"image", "mask"}
    assert "aspect_ratio" not in sent["form"]
    assert sent["form"]["rendering_speed"] == "QUALITY"


async def test_v3_image_without_mask_is_a_remix(adapter: IdeogramAdapter, fake: FastAPI) -> None:
    await adapter.submit(_request(params={"image": "https://in.test/src.png"}))
    assert fake.state.requests[0]["path"] == "/v1/ideogram-v3/remix"


async def test_legacy_generate_sends_image_request_json(
    adapter: IdeogramAdapter, fake: FastAPI
) -> None:
    params = {
        "aspect_ratio": "10:16",
        "style_type": "Render_3d",
        "magic_prompt_option": "Auto",
        "seed": 7,
        "negative_prompt": "text",
    }
    result = await adapter.submit(_request(params=params, model="ideogram-v2", upstream="V_2"))

    assert isinstance(result, Finished)
    [output] = result.images
    assert output.url is not None
    assert (await _download(fake, output.url)).size == (80, 128)
    [sent] = fake.state.requests
    assert sent["path"] == "/generate"
    assert sent["json"] == {
        "image_request": {
            "prompt": "a neon sign that says hello",
            "model": "V_2",
            "magic_prompt_option": "AUTO",
            "seed": 7,
            "style_type": "RENDER_3D",
            "negative_prompt": "text",
            "aspect_ratio": "ASPECT_10_16",
        }
    }


async def test_legacy_resolution_wins_and_negative_prompt_is_dropped_for_v2a(
    adapter: IdeogramAdapter, fake: FastAPI
) -> None:
    params = {"resolution": "1024x1024", "aspect_ratio": "16:9", "negative_prompt": "x"}
    await adapter.submit(_request(params=params, model="ideogram-v2a", upstream="V_2A"))
    body = fake.state.requests[0]["json"]["image_request"]
    assert body["resolution"] == "RESOLUTION_1024_1024"
    assert "aspect_ratio" not in body
    assert "negative_prompt" not in body


async def test_legacy_edit_and_remix_are_multipart(adapter: IdeogramAdapter, fake: FastAPI) -> None:
    masked = {"image": "https://in.test/a.png", "mask": "https://in.test/m.png"}
    await adapter.submit(_request(params=masked, upstream="V_2_TURBO"))
    await adapter.submit(_request(params={"image": "https://in.test/a.png"}, upstream="V_2"))

    edit, remix = fake.state.requests
    assert edit["path"] == "/edit"
    assert edit["form"]["model"] == "V_2_TURBO"
    assert set(edit["files"]) == {"image_file", "mask"}
    assert remix["path"] == "/remix"
    assert json.loads(remix["form"]["image_request"])["model"] == "V_2"
    assert set(remix["files"]) == {"image_file"}


async def test_legacy_edit_on_v2a_passes_ideogram_message(adapter: IdeogramAdapter) -> None:
    masked = {"image": "https://in.test/a.png", "mask": "https://in.test/m.png"}
    with pytest.raises(UpstreamRejected, match="only supported for V_2, V_2_TURBO"):
        await adapter.submit(_request(params=masked, upstream="V_2A"))


async def test_safety_422_is_moderation(adapter: IdeogramAdapter) -> None:
    with pytest.raises(UpstreamModerated, match="failed safety check"):
        await adapter.submit(_request("moderate-me"))


async def test_unsafe_output_is_moderation(adapter: IdeogramAdapter) -> None:
    with pytest.raises(UpstreamModerated, match="is_image_safe"):
        await adapter.submit(_request("unsafe-output", upstream="V_2"))


async def test_rate_limit_is_retryable_with_retry_after(adapter: IdeogramAdapter) -> None:
    with pytest.raises(UpstreamRetryable) as caught:
        await adapter.submit(_request("rate-limit-me"))
    assert caught.value.retry_after == 5.0


@pytest.mark.parametrize("prompt", ["server-error", "unavailable"])
async def test_server_errors_are_retryable(adapter: IdeogramAdapter, prompt: str) -> None:
    with pytest.raises(UpstreamRetryable):
        await adapter.submit(_request(prompt))


async def test_no_funds_is_a_misconfiguration(adapter: IdeogramAdapter) -> None:
    with pytest.raises(UpstreamMisconfigured, match="insufficient_funds"):
        await adapter.submit(_request("no-funds"))


async def test_invalid_input_passes_ideogram_message(adapter: IdeogramAdapter) -> None:
    with pytest.raises(UpstreamRejected, match="Invalid aspect_ratio: 7x5"):
        await adapter.submit(_request(params={"aspect_ratio": "7:5"}))


async def test_wrong_key_is_a_misconfiguration(fake: FastAPI) -> None:
    adapter = _adapter(fake, key="nope")
    try:
        with pytest.raises(UpstreamMisconfigured):
            await adapter.submit(_request())
    finally:
        await adapter.aclose()


async def test_unknown_upstream_model_is_a_misconfiguration(
    adapter: IdeogramAdapter, fake: FastAPI
) -> None:
    with pytest.raises(UpstreamMisconfigured, match="V_9"):
        await adapter.submit(_request(upstream="V_9"))
    assert fake.state.requests == []
