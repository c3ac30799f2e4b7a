"""The Replicate adapter against the fake Replicate predictions API, in-process."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator, Mapping
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
from imagegate.providers.port import (
    Finished,
    GenerationRequest,
    Pending,
    ProviderContext,
    Submitted,
    TaskHandle,
)
from imagegate.providers.replicate import ReplicateAdapter, build_input, create_adapter
from imagegate.settings import ProviderSettings
from imagegate.testing.fake_upstream.replicate import create_app
from imagegate.types import Route
from tests.images import image_bytes
from tests.integration.providers.conftest import (
    adapter_on,
    download,
    generation_request,
    input_fetcher,
    run_to_finish,
)
from tests.integration.providers.routes import catalog_route

TOKEN = "r8_test_token"
BASE = "http://replicate.test/v1"


fetch_input = input_fetcher(image_bytes((8, 8), (0, 0, 0)))


def _adapter(app: Any, token: str = TOKEN, **options: Any) -> ReplicateAdapter:
    return adapter_on(
        create_adapter, app, api_key=token, base_url=BASE, options=options, fetch_input=fetch_input
    )


def _request(
    slug: str = "black-forest-labs/flux-2-pro",
    prompt: str = "a lighthouse",
    params: Mapping[str, Any] | None = None,
    outputs: int = 1,
) -> GenerationRequest:
    return generation_request(
        "flux-2-pro", catalog_route("replicate", slug), prompt, params, outputs=outputs
    )


@pytest.fixture
def app() -> Any:
    return create_app(token=TOKEN)


@pytest.fixture
async def adapter(app: Any) -> AsyncIterator[ReplicateAdapter]:
    adapter = _adapter(app)
    yield adapter
    await adapter.aclose()


async def _run(adapter: ReplicateAdapter, request: GenerationRequest) -> Finished:
    """Replicate may answer at submit: the adapter asks it to wait for short predictions."""
    return await run_to_finish(adapter, request, may_finish_at_submit=True)


def test_input_mapping_renames_converts_and_drops() -> None:
    flux = build_input(
        catalog_route("replicate", "black-forest-labs/flux-2-pro"),
        "p",
        {"aspect_ratio": "16:9", "resolution": "2MP", "output_format": "jpg", "steps": 30,
         "input_images": ["https://x/a.png"], "seed": 7},
    )  # fmt: skip
    assert flux == {
        "prompt": "p", "aspect_ratio": "16:9", "resolution": "2 MP", "output_format": "jpg",
        "input_images": ["https://x/a.png"], "seed": 7,
    }  # fmt: skip
    assert (
        build_input(
            catalog_route("replicate", "black-forest-labs/flux-2-flex"), "p", {"steps": 30}
        )["steps"]
        == 30
    )
    qwen = build_input(
        catalog_route("replicate", "qwen/qwen-image"),
        "p",
        {"image_size": "landscape_16_9", "guidance_scale": 4, "acceleration": "none",
         "image_url": "https://x/i.png", "num_images": 2},
    )  # fmt: skip
    assert qwen == {
        "prompt": "p", "image": "https://x/i.png", "aspect_ratio": "16:9", "guidance": 4,
        "go_fast": False,
    }  # fmt: skip
    gpt = build_input(
        catalog_route("replicate", "openai/gpt-image-2"),
        "p",
        {"output_format": "jpeg", "quality": "low"},
        3,
    )
    assert gpt == {"prompt": "p", "quality": "low", "output_format": "jpeg", "number_of_images": 3}
    seedream = build_input(
        catalog_route("replicate", "bytedance/seedream-4"), "p", {"size": "2K"}, 2
    )
    assert seedream["max_images"] == 2 and seedream["sequential_image_generation"] == "auto"
    with pytest.raises(UpstreamRejected, match="no input mapping"):
        build_input(Route("replicate", "someone/unknown-model"), "p", {})


async def test_create_sends_the_mapped_input_with_bearer_auth(
    app: Any, adapter: ReplicateAdapter
) -> None:
    params = {"aspect_ratio": "16:9", "resolution": "1MP", "output_format": "png", "raw": True}
    result = await _run(adapter, _request(params=params))

    create = next(r for r in app.state.requests if r["method"] == "POST")
    assert create["path"] == "/v1/models/black-forest-labs/flux-2-pro/predictions"
    assert create["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert "prefer" not in create["headers"]
    assert create["json"] == {
        "input": {"prompt": "a lighthouse", "aspect_ratio": "16:9", "resolution": "1 MP",
                  "output_format": "png"},
    }  # fmt: skip
    assert len(result.images) == 1
    assert result.images[0].content_type == "image/png"
    image = await download(app, result.images[0].url)
    assert image.format == "PNG" and image.size == (96, 54)
    assert result.served_model == "black-forest-labs/flux-2-pro"


async def test_several_outputs_in_one_prediction(app: Any, adapter: ReplicateAdapter) -> None:
    request = _request("openai/gpt-image-1.5", params={"output_format": "webp"}, outputs=3)
    result = await _run(adapter, request)
    assert len(result.images) == 3
    for image in result.images:
        assert image.content_type == "image/webp"
        assert (await download(app, image.url)).format == "WEBP"


async def test_prefer_wait_finishes_in_submit(app: Any) -> None:
    adapter = _adapter(app, wait=30, cancel_after="5m")
    try:
        answer = await adapter.submit(
            _request("google/nano-banana", params={"output_format": "jpg"})
        )
    finally:
        await adapter.aclose()
    assert isinstance(answer, Finished) and len(answer.images) == 1
    create = app.state.requests[0]
    assert create["headers"]["prefer"] == "wait=30"
    assert create["headers"]["cancel-after"] == "5m"


async def test_versioned_route_uses_the_predictions_endpoint(
    app: Any, adapter: ReplicateAdapter
) -> None:
    slug = "black-forest-labs/flux-2-dev:abc123"
    await _run(adapter, _request(slug, params={"go_fast": True}))
    create = app.state.requests[0]
    assert create["path"] == "/v1/predictions"
    assert create["json"] == {"version": slug, "input": {"prompt": "a lighthouse", "go_fast": True}}


async def test_slow_prediction_reports_progress_from_logs(adapter: ReplicateAdapter) -> None:
    request = _request(prompt="slow lighthouse")
    submitted = await adapter.submit(request)
    assert isinstance(submitted, Submitted)
    handle = TaskHandle(submitted.task_id, submitted.state)
    progress = []
    answer = await adapter.poll(request, handle)
    while isinstance(answer, Pending):
        progress.append(answer.progress)
        answer = await adapter.poll(request, handle)
    assert progress == [25, 50, 75]
    assert isinstance(answer, Finished)


@pytest.mark.parametrize("word", ["moderate-me", "nsfw-me"])
async def test_safety_failures_are_moderated(adapter: ReplicateAdapter, word: str) -> None:
    with pytest.raises(UpstreamModerated, match="content policy"):
        await _run(adapter, _request(prompt=word))


async def test_plain_failure_is_rejected_with_the_error(adapter: ReplicateAdapter) -> None:
    with pytest.raises(UpstreamRejected, match="crashed while loading weights"):
        await _run(adapter, _request(prompt="fail-me"))


async def test_invalid_input_is_rejected_with_replicate_detail(adapter: ReplicateAdapter) -> None:
    with pytest.raises(UpstreamRejected, match=r"input.aspect_ratio: aspect_ratio must be one of"):
        await adapter.submit(_request(params={"aspect_ratio": "7:3"}))


async def test_throttle_is_retryable_with_retry_after(adapter: ReplicateAdapter) -> None:
    with pytest.raises(UpstreamRetryable, match="throttled") as caught:
        await adapter.submit(_request(prompt="rate-limit-me"))
    assert caught.value.retry_after == 30


async def test_server_error_is_retryable(adapter: ReplicateAdapter) -> None:
    with pytest.raises(UpstreamRetryable):
        await adapter.submit(_request(prompt="server-error"))


async def test_bad_token_is_misconfigured(app: Any) -> None:
    adapter = _adapter(app, token="r8_wrong")
    try:
        with pytest.raises(UpstreamMisconfigured, match="valid authentication token"):
            await adapter.submit(_request())
    finally:
        await adapter.aclose()


async def test_unknown_prediction_is_lost(adapter: ReplicateAdapter) -> None:
    with pytest.raises(UpstreamTaskLost):
        await adapter.poll(_request(), TaskHandle("doesnotexist"))


async def test_cancel_stops_the_prediction(app: Any, adapter: ReplicateAdapter) -> None:
    request = _request(prompt="slow lighthouse")
    submitted = await adapter.submit(request)
    assert isinstance(submitted, Submitted)
    handle = TaskHandle(submitted.task_id)
    await adapter.cancel(request, handle)
    assert app.state.requests[-1]["path"] == f"/v1/predictions/{submitted.task_id}/cancel"
    with pytest.raises(UpstreamRejected, match="canceled"):
        await adapter.poll(request, handle)
    await adapter.cancel(request, TaskHandle("gone"))  # a vanished prediction is not an error


async def test_data_uri_output_is_decoded() -> None:
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            201, json={"id": "p1", "status": "succeeded", "output": [uri], "model": "m/n"}
        )

    config = ProviderSettings(api_key=SecretStr(TOKEN), options={"wait": 60})
    adapter = create_adapter(
        config, ProviderContext(fetch_input=fetch_input, transport=httpx2.MockTransport(handler))
    )
    try:
        answer = await adapter.submit(_request())
    finally:
        await adapter.aclose()
    assert isinstance(answer, Finished)
    assert answer.images[0].data == png.getvalue()
    assert answer.images[0].content_type == "image/png"
