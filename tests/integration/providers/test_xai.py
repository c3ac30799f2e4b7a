"""The xAI adapter against the fake Grok Imagine API, in-process over ASGI."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

import httpx2
import pytest

from imagegate.errors import (
    UpstreamMisconfigured,
    UpstreamModerated,
    UpstreamRejected,
    UpstreamRetryable,
)
from imagegate.providers import registry, xai
from imagegate.providers.port import Finished, GenerationRequest, ProviderAdapter, ProviderContext
from imagegate.settings import ProviderSettings
from imagegate.testing.fake_upstream.xai import create_app
from imagegate.types import FetchedInput, Route
from tests.images import image_bytes
from tests.integration.providers.conftest import (
    Closing,
    adapter_on,
    generation_request,
    opened,
    received,
)

KEY = "xai-fake-key"
INPUT = "https://cdn.example/input.png"


class Inputs:
    """The gateway's input fetcher stand-in: serves a real PNG and remembers what was asked."""

    def __init__(self, data: bytes | None = None) -> None:
        self.data = data if data is not None else image_bytes((48, 32), (30, 160, 90))
        self.urls: list[str] = []

    async def __call__(self, url: str) -> FetchedInput:
        self.urls.append(url)
        return FetchedInput(data=self.data, content_type="image/png", url=url)


AdapterFactory = Callable[..., xai.XaiAdapter]


@pytest.fixture
def fake() -> Any:
    return create_app(api_key=KEY)


@pytest.fixture
def make_adapter(fake: Any, closing: Closing) -> AdapterFactory:
    def make(
        *,
        api_key: str = KEY,
        options: Mapping[str, Any] | None = None,
        inputs: Inputs | None = None,
    ) -> xai.XaiAdapter:
        adapter = adapter_on(
            xai.create_adapter,
            fake,
            api_key=api_key,
            base_url="https://api.x.test/v1",
            options=options,
            fetch_input=inputs or Inputs(),
        )
        return closing(adapter)

    return make


def job(prompt: str, params: Mapping[str, Any], outputs: int = 1) -> GenerationRequest:
    return generation_request(
        "grok-imagine-image", Route("xai", "grok-imagine-image"), prompt, params, outputs=outputs
    )


async def test_generation_sends_the_mapped_payload_and_decodes_the_images(
    fake: Any, make_adapter: AdapterFactory
) -> None:
    adapter = make_adapter(options={"resolution": "1k"})

    result = await adapter.submit(job("a comet", {"aspect_ratio": "16:9"}, outputs=2))

    [request] = received(fake)
    assert request.path == "/v1/images/generations"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json == {
        "model": "grok-imagine-image",
        "prompt": "a comet",
        "n": 2,
        "response_format": "b64_json",
        "aspect_ratio": "16:9",
        "resolution": "1k",
    }
    assert result.served_model == "grok-imagine-image"
    assert [image.content_type for image in result.images] == ["image/jpeg", "image/jpeg"]
    assert [(p.format, p.size) for p in opened(result)] == [("JPEG", (128, 72))] * 2


async def test_an_image_param_becomes_a_json_edit_with_a_data_uri(
    fake: Any, make_adapter: AdapterFactory
) -> None:
    inputs = Inputs()

    result = await make_adapter(inputs=inputs).submit(
        job("make it night", {"aspect_ratio": "1:1", "image": INPUT})
    )

    assert inputs.urls == [INPUT]
    [request] = received(fake)
    assert request.path == "/v1/images/edits"
    assert request.headers["content-type"] == "application/json"
    image = request.json.pop("image")
    assert request.json == {
        "model": "grok-imagine-image",
        "prompt": "make it night",
        "n": 1,
        "response_format": "b64_json",
        "aspect_ratio": "1:1",
    }
    assert image["type"] == "image_url"
    header, encoded = image["url"].split(",", 1)
    assert header == "data:image/png;base64"
    assert base64.b64decode(encoded) == inputs.data
    assert [p.size for p in opened(result)] == [(128, 128)]


async def test_public_input_urls_can_be_passed_through(
    fake: Any, make_adapter: AdapterFactory
) -> None:
    inputs = Inputs()
    adapter = make_adapter(inputs=inputs, options={"send_input_urls": True})

    await adapter.submit(job("make it night", {"image": INPUT}))

    assert inputs.urls == []
    assert received(fake)[0].json["image"] == {"type": "image_url", "url": INPUT}


async def test_a_withheld_image_is_moderated(make_adapter: AdapterFactory) -> None:
    with pytest.raises(UpstreamModerated, match="withheld"):
        await make_adapter().submit(job("moderate-me", {}))


async def test_an_empty_answer_is_moderated(make_adapter: AdapterFactory) -> None:
    with pytest.raises(UpstreamModerated, match="no image"):
        await make_adapter().submit(job("block-me", {}))


async def test_rate_limit_is_retryable_after_the_advised_delay(
    make_adapter: AdapterFactory,
) -> None:
    with pytest.raises(UpstreamRetryable, match="exceeded its rate limit") as caught:
        await make_adapter().submit(job("rate-limit-me", {}))
    assert caught.value.retry_after == 5


async def test_a_server_error_is_retryable(make_adapter: AdapterFactory) -> None:
    with pytest.raises(UpstreamRetryable, match="500"):
        await make_adapter().submit(job("server-error", {}))


async def test_a_wrong_key_answered_with_400_is_a_misconfiguration(
    make_adapter: AdapterFactory,
) -> None:
    with pytest.raises(UpstreamMisconfigured, match="Incorrect API key provided: xa\\*\\*\\*ng"):
        await make_adapter(api_key="xai-wrong").submit(job("a comet", {}))


async def test_a_missing_key_is_a_misconfiguration(fake: Any) -> None:
    config = ProviderSettings(base_url="https://api.x.test/v1")
    context = ProviderContext(fetch_input=Inputs(), transport=httpx2.ASGITransport(app=fake))
    adapter = xai.create_adapter(config, context)
    try:
        with pytest.raises(UpstreamMisconfigured, match="Missing bearer"):
            await adapter.submit(job("a comet", {}))
    finally:
        await adapter.aclose()
    assert "authorization" not in received(fake)[0].headers


async def test_a_vendor_validation_error_is_rejected_with_its_message(
    make_adapter: AdapterFactory,
) -> None:
    with pytest.raises(UpstreamRejected, match="Unable to decode the input image"):
        await make_adapter(inputs=Inputs(data=b"GIF89a broken")).submit(
            job("edit", {"image": INPUT})
        )


async def test_an_unknown_model_is_a_dead_route_with_the_vendor_message(
    make_adapter: AdapterFactory,
) -> None:
    adapter = make_adapter(options={"models": {"grok-imagine-image": "grok-9-image"}})

    with pytest.raises(UpstreamMisconfigured, match="grok-9-image does not exist"):
        await adapter.submit(job("a comet", {}))


async def test_the_registry_builds_the_adapter_by_provider_name(fake: Any) -> None:
    config = ProviderSettings(api_key=KEY, base_url="https://api.x.test/v1")
    context = ProviderContext(fetch_input=Inputs(), transport=httpx2.ASGITransport(app=fake))
    adapter = registry.create_adapter("xai", config, context)
    try:
        assert isinstance(adapter, ProviderAdapter)
        assert isinstance(await adapter.submit(job("a comet", {})), Finished)
    finally:
        await adapter.aclose()
