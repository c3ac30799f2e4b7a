"""The Reve adapter against the fake Reve API, in-process over ASGI."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

import httpx2
import pytest
from PIL import Image

from imagegate.errors import (
    UpstreamMisconfigured,
    UpstreamModerated,
    UpstreamRejected,
    UpstreamRetryable,
)
from imagegate.providers import registry, reve
from imagegate.providers.port import Finished, GenerationRequest, ProviderAdapter, ProviderContext
from imagegate.settings import ProviderSettings
from imagegate.testing.fake_upstream.reve import create_app
from imagegate.types import FetchedInput, Route
from tests.integration.providers.conftest import Closing, adapter_on, generation_request, received

KEY = "papi.fake-reve"


async def no_inputs(url: str) -> FetchedInput:
    """Reve create is text-to-image only: the adapter must never download an input."""
    raise AssertionError(f"reve fetched an input image: {url}")


AdapterFactory = Callable[..., reve.ReveAdapter]


@pytest.fixture
def fake() -> Any:
    return create_app(api_key=KEY)


@pytest.fixture
def make_adapter(fake: Any, closing: Closing) -> AdapterFactory:
    def make(*, api_key: str = KEY, options: Mapping[str, Any] | None = None) -> reve.ReveAdapter:
        adapter = adapter_on(
            reve.create_adapter,
            fake,
            api_key=api_key,
            base_url="https://api.reve.test",
            options=options,
            fetch_input=no_inputs,
        )
        return closing(adapter)

    return make


def job(prompt: str, params: Mapping[str, Any], outputs: int = 1) -> GenerationRequest:
    return generation_request(
        "reve-create", Route("reve", "reve-create"), prompt, params, outputs=outputs
    )


def opened(result: Finished) -> Image.Image:
    [image] = result.images
    assert image.data is not None
    return Image.open(io.BytesIO(image.data))


async def test_create_sends_the_mapped_payload_and_decodes_the_image(
    fake: Any, make_adapter: AdapterFactory
) -> None:
    params = {"aspect_ratio": "16:9", "seed": 42, "version": "reve-create@20250915"}

    result = await make_adapter().submit(job("a harbour at dawn", params))

    [request] = received(fake)
    assert request.path == "/v1/image/create"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["accept"] == "application/json"
    assert request.json == {
        "prompt": "a harbour at dawn",
        "aspect_ratio": "16:9",
        "version": "reve-create@20250915",
    }
    assert result.served_model == "reve-create@20250915"
    assert result.images[0].content_type == "image/png"
    picture = opened(result)
    assert (picture.format, picture.size) == ("PNG", (128, 72))


async def test_options_add_scaling_postprocessing_and_a_default_version(
    fake: Any, make_adapter: AdapterFactory
) -> None:
    options = {
        "version": "latest",
        "test_time_scaling": 3,
        "postprocessing": [{"process": "upscale", "upscale_factor": 2}],
    }

    result = await make_adapter(options=options).submit(job("a harbour", {}))

    assert received(fake)[0].json == {
        "prompt": "a harbour",
        "version": "latest",
        "test_time_scaling": 3,
        "postprocessing": [{"process": "upscale", "upscale_factor": 2}],
    }
    assert result.served_model == "reve-create@20250915"
    assert opened(result).size == (256, 171)  # Reve's 3:2 default, upscaled twice


async def test_a_content_violation_is_moderated(make_adapter: AdapterFactory) -> None:
    with pytest.raises(UpstreamModerated, match="flagged"):
        await make_adapter().submit(job("moderate-me", {}))


async def test_rate_limit_is_retryable_after_the_advised_delay(
    make_adapter: AdapterFactory,
) -> None:
    with pytest.raises(UpstreamRetryable, match="Rate limit exceeded") as caught:
        await make_adapter().submit(job("rate-limit-me", {}))
    assert caught.value.retry_after == 30


async def test_a_server_error_is_retryable(make_adapter: AdapterFactory) -> None:
    with pytest.raises(UpstreamRetryable, match="500"):
        await make_adapter().submit(job("server-error", {}))


async def test_an_empty_budget_is_not_retried(make_adapter: AdapterFactory) -> None:
    with pytest.raises(UpstreamMisconfigured, match="Your budget has run out"):
        await make_adapter().submit(job("broke-me", {}))


async def test_a_wrong_key_is_a_misconfiguration(make_adapter: AdapterFactory) -> None:
    with pytest.raises(UpstreamMisconfigured, match="Invalid API key"):
        await make_adapter(api_key="papi.wrong").submit(job("a harbour", {}))


async def test_a_vendor_validation_error_is_rejected_with_its_message(
    make_adapter: AdapterFactory,
) -> None:
    with pytest.raises(UpstreamRejected, match="exceeds maximum length of 2560"):
        await make_adapter().submit(job("a" * 2561, {}))


async def test_a_bad_version_is_rejected_with_its_message(make_adapter: AdapterFactory) -> None:
    with pytest.raises(UpstreamRejected, match="Invalid version: 'v9'"):
        await make_adapter().submit(job("a harbour", {"version": "v9"}))


async def test_more_than_one_output_is_refused_before_calling_reve(
    fake: Any, make_adapter: AdapterFactory
) -> None:
    with pytest.raises(UpstreamRejected, match="exactly one image"):
        await make_adapter().submit(job("two harbours", {}, outputs=2))
    assert received(fake) == []


async def test_the_registry_builds_the_adapter_by_provider_name(fake: Any) -> None:
    config = ProviderSettings(api_key=KEY, base_url="https://api.reve.test")
    context = ProviderContext(fetch_input=no_inputs, transport=httpx2.ASGITransport(app=fake))
    adapter = registry.create_adapter("reve", config, context)
    try:
        assert isinstance(adapter, ProviderAdapter)
        assert isinstance(await adapter.submit(job("a harbour", {})), Finished)
    finally:
        await adapter.aclose()
