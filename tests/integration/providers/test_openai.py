"""The OpenAI adapter against the fake OpenAI Images API, in-process over ASGI."""

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
from imagegate.providers import openai, registry
from imagegate.providers.port import Finished, GenerationRequest, ProviderAdapter, ProviderContext
from imagegate.settings import ProviderSettings
from imagegate.testing.fake_upstream.openai import create_app
from imagegate.types import FetchedInput, Route
from tests.images import image_bytes
from tests.integration.providers.conftest import (
    Closing,
    adapter_on,
    generation_request,
    opened,
    received,
)

KEY = "sk-fake-openai"


class Inputs:
    """The gateway's input fetcher stand-in: serves real PNGs and remembers what was asked."""

    def __init__(self, data: bytes | None = None) -> None:
        self.data = data
        self.urls: list[str] = []

    async def __call__(self, url: str) -> FetchedInput:
        self.urls.append(url)
        data = (
            self.data
            if self.data is not None
            else image_bytes((64, 64), (10, 20 * len(self.urls), 90))
        )
        return FetchedInput(data=data, content_type="image/png", url=url)


AdapterFactory = Callable[..., openai.OpenAIAdapter]


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
        app: Any = None,
        transport: Any = None,
    ) -> openai.OpenAIAdapter:
        adapter = adapter_on(
            openai.create_adapter,
            app or fake,
            api_key=api_key,
            base_url="https://api.openai.test/v1",
            options=options,
            fetch_input=inputs or Inputs(),
            transport=transport,
        )
        return closing(adapter)

    return make


def job(model: str, prompt: str, params: Mapping[str, Any], outputs: int = 1) -> GenerationRequest:
    return generation_request(model, Route("openai", model), prompt, params, outputs=outputs)


async def test_generation_sends_the_mapped_payload_and_decodes_every_image(
    fake: Any, make_adapter: AdapterFactory
) -> None:
    adapter = make_adapter(options={"organization": "org-42", "project": "proj_7"})
    params = {
        "quality": "high",
        "aspect_ratio": "3:2",
        "output_format": "png",
        "background": "opaque",
        "input_fidelity": "low",
        "number_of_images": 2,
    }

    result = await adapter.submit(job("gpt-image-1.5", "a red fox", params, outputs=2))

    [request] = received(fake)
    assert request.path == "/v1/images/generations"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["openai-organization"] == "org-42"
    assert request.headers["openai-project"] == "proj_7"
    assert request.json == {
        "model": "gpt-image-1.5",
        "prompt": "a red fox",
        "n": 2,
        "size": "1536x1024",
        "quality": "high",
        "output_format": "png",
        "background": "opaque",
    }
    assert isinstance(result, Finished)
    assert result.served_model == "gpt-image-1.5"
    assert [image.content_type for image in result.images] == ["image/png", "image/png"]
    pictures = opened(result)
    assert [(p.format, p.size) for p in pictures] == [("PNG", (192, 128))] * 2
    assert pictures[0].tobytes() != pictures[1].tobytes()


async def test_defaults_give_a_square_webp(fake: Any, make_adapter: AdapterFactory) -> None:
    result = await make_adapter().submit(job("gpt-image-1.5", "a lighthouse", {}))

    assert received(fake)[0].json == {
        "model": "gpt-image-1.5",
        "prompt": "a lighthouse",
        "n": 1,
        "size": "1024x1024",
        "quality": "auto",
        "output_format": "webp",
        "background": "auto",
    }
    assert result.images[0].content_type == "image/webp"
    assert [(p.format, p.size) for p in opened(result)] == [("WEBP", (128, 128))]


async def test_input_images_go_to_edits_as_multipart_files(
    fake: Any, make_adapter: AdapterFactory
) -> None:
    inputs = Inputs()
    adapter = make_adapter(inputs=inputs)
    urls = ["https://cdn.example/a.png", "https://cdn.example/b.png"]
    params = {"aspect_ratio": "2:3", "input_images": urls, "input_fidelity": "high"}

    result = await adapter.submit(job("gpt-image-1.5", "make it watercolour", params))

    assert inputs.urls == urls
    [request] = received(fake)
    assert request.path == "/v1/images/edits"
    assert request.headers["content-type"].startswith("multipart/form-data")
    assert request.form == {
        "model": "gpt-image-1.5",
        "prompt": "make it watercolour",
        "n": "1",
        "size": "1024x1536",
        "quality": "auto",
        "output_format": "webp",
        "background": "auto",
        "input_fidelity": "high",
    }
    assert [(name, kind) for name, _, kind, _ in request.files] == [("image[]", "image/png")] * 2
    sent = [Image.open(io.BytesIO(data)).getpixel((0, 0)) for *_, data in request.files]
    assert sent == [(10, 20, 90), (10, 40, 90)]
    assert [p.size for p in opened(result)] == [(128, 192)]


async def test_dall_e_3_maps_its_own_params(fake: Any, make_adapter: AdapterFactory) -> None:
    params = {"aspect_ratio": "2:3", "style": "natural"}

    result = await make_adapter(options={"dalle3_quality": "hd"}).submit(
        job("dall-e-3", "a castle", params)
    )

    assert received(fake)[0].json == {
        "model": "dall-e-3",
        "prompt": "a castle",
        "response_format": "b64_json",
        "n": 1,
        "size": "1024x1792",
        "quality": "hd",
        "style": "natural",
    }
    assert result.served_model == "dall-e-3"
    assert [(p.format, p.size) for p in opened(result)] == [("PNG", (128, 224))]


async def test_dall_e_2_draws_squares_without_style(
    fake: Any, make_adapter: AdapterFactory
) -> None:
    params = {"aspect_ratio": "3:2", "style": "vivid"}

    result = await make_adapter().submit(job("dall-e-2", "a boat", params, outputs=2))

    assert received(fake)[0].json == {
        "model": "dall-e-2",
        "prompt": "a boat",
        "response_format": "b64_json",
        "n": 2,
        "size": "1024x1024",
        "quality": "standard",
    }
    assert len(opened(result)) == 2


async def test_dall_e_3_refuses_more_than_one_output(make_adapter: AdapterFactory) -> None:
    with pytest.raises(UpstreamRejected, match="exactly one image"):
        await make_adapter().submit(job("dall-e-3", "two castles", {}, outputs=2))


async def test_a_retired_model_aliased_to_gpt_image_is_served_by_it(
    make_adapter: AdapterFactory,
) -> None:
    retired = create_app(api_key=KEY, retired_models=["dall-e-3"])
    adapter = make_adapter(app=retired, options={"models": {"dall-e-3": "gpt-image-1.5"}})

    result = await adapter.submit(job("dall-e-3", "a castle", {"aspect_ratio": "3:2"}))

    body = received(retired)[0].json
    assert (body["model"], body["size"]) == ("gpt-image-1.5", "1536x1024")
    assert "style" not in body
    assert result.served_model == "gpt-image-1.5"
    assert len(opened(result)) == 1


async def test_a_retired_model_without_alias_is_a_dead_route_with_the_vendor_message(
    make_adapter: AdapterFactory,
) -> None:
    retired = create_app(api_key=KEY, retired_models=["dall-e-3"])

    with pytest.raises(UpstreamMisconfigured, match="`dall-e-3` does not exist"):
        await make_adapter(app=retired).submit(job("dall-e-3", "a castle", {}))


@pytest.mark.parametrize("model", ["gpt-image-1.5", "dall-e-3"])
async def test_moderation_is_reported_as_moderated(
    make_adapter: AdapterFactory, model: str
) -> None:
    with pytest.raises(UpstreamModerated, match="safety system"):
        await make_adapter().submit(job(model, "moderate-me please", {}))


async def test_rate_limit_is_retryable_after_the_advised_delay(
    make_adapter: AdapterFactory,
) -> None:
    with pytest.raises(UpstreamRetryable) as caught:
        await make_adapter().submit(job("gpt-image-1.5", "rate-limit-me", {}))
    assert caught.value.retry_after == 7


async def test_an_empty_quota_is_not_retried(make_adapter: AdapterFactory) -> None:
    with pytest.raises(UpstreamMisconfigured, match="exceeded your current quota"):
        await make_adapter().submit(job("gpt-image-1.5", "quota-me", {}))


async def test_a_server_error_is_retryable(make_adapter: AdapterFactory) -> None:
    with pytest.raises(UpstreamRetryable, match="500"):
        await make_adapter().submit(job("gpt-image-1.5", "server-error", {}))


async def test_a_wrong_key_is_a_misconfiguration(fake: Any, make_adapter: AdapterFactory) -> None:
    with pytest.raises(UpstreamMisconfigured, match="Incorrect API key") as caught:
        await make_adapter(api_key="sk-wrong-key-123").submit(job("gpt-image-1.5", "a fox", {}))
    assert "sk-wrong-key-123" not in caught.value.message
    assert received(fake)[0].headers["authorization"] == "Bearer sk-wrong-key-123"


async def test_a_vendor_validation_error_is_rejected_with_its_message(
    make_adapter: AdapterFactory,
) -> None:
    params = {"background": "transparent", "output_format": "jpeg"}

    with pytest.raises(UpstreamRejected, match="Transparent background is not supported"):
        await make_adapter().submit(job("gpt-image-1.5", "a logo", params))


async def test_an_unreadable_input_image_is_rejected(make_adapter: AdapterFactory) -> None:
    adapter = make_adapter(inputs=Inputs(data=b"<html>not an image</html>"))
    params = {"input_images": ["https://cdn.example/page.png"]}

    with pytest.raises(UpstreamRejected, match="Invalid image file"):
        await adapter.submit(job("gpt-image-1.5", "edit it", params))


async def test_connection_refused_is_retryable_but_a_timeout_after_sending_is_not(
    make_adapter: AdapterFactory,
) -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    def hang(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("timed out", request=request)

    refused = make_adapter(transport=httpx2.MockTransport(refuse))
    with pytest.raises(UpstreamRetryable, match="unreachable"):
        await refused.submit(job("gpt-image-1.5", "a fox", {}))

    timed_out = make_adapter(transport=httpx2.MockTransport(hang))
    with pytest.raises(UpstreamRejected, match="may already have charged"):
        await timed_out.submit(job("gpt-image-1.5", "a fox", {}))


async def test_gpt_image_2_params_pass_moderation_through(
    fake: Any, make_adapter: AdapterFactory
) -> None:
    params = {"quality": "low", "moderation": "low", "background": "opaque"}

    result = await make_adapter().submit(job("gpt-image-2", "a kite", params))

    body = received(fake)[0].json
    assert (body["model"], body["moderation"], body["quality"]) == ("gpt-image-2", "low", "low")
    assert len(opened(result)) == 1


async def test_the_registry_builds_the_adapter_by_provider_name(fake: Any) -> None:
    config = ProviderSettings(api_key=KEY, base_url="https://api.openai.test/v1")
    context = ProviderContext(fetch_input=Inputs(), transport=httpx2.ASGITransport(app=fake))
    adapter = registry.create_adapter("openai", config, context)
    try:
        assert isinstance(adapter, ProviderAdapter)
        assert (adapter.name, adapter.supports_cancel) == ("openai", False)
        assert isinstance(await adapter.submit(job("gpt-image-1.5", "a fox", {})), Finished)
    finally:
        await adapter.aclose()
