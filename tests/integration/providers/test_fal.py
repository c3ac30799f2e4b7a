"""The fal adapter against the fake fal queue, in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr

from imagegate.errors import (
    UpstreamMisconfigured,
    UpstreamModerated,
    UpstreamRejected,
    UpstreamRetryable,
    UpstreamTaskLost,
)
from imagegate.providers.fal import FalAdapter, build_input, create_adapter, endpoint
from imagegate.providers.port import (
    Finished,
    GenerationRequest,
    Pending,
    ProviderContext,
    Submitted,
    TaskHandle,
)
from imagegate.settings import ProviderSettings
from imagegate.testing.fake_upstream.fal import create_app
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

KEY = "fal_test_key"
BASE = "http://queue.test"


fetch_input = input_fetcher(image_bytes((8, 8), (0, 0, 0)))


def _adapter(app: Any, key: str | None = KEY) -> FalAdapter:
    return adapter_on(
        create_adapter, app, api_key=key or None, base_url=BASE, fetch_input=fetch_input
    )


def _request(
    model_id: str = "fal-ai/flux-pro/v1.1-ultra",
    prompt: str = "a harbour at dawn",
    params: Mapping[str, Any] | None = None,
    outputs: int = 1,
) -> GenerationRequest:
    return generation_request(
        "flux-1.1-pro-ultra", catalog_route("fal", model_id), prompt, params, outputs=outputs
    )


@pytest.fixture
def app() -> Any:
    return create_app(key=KEY)


@pytest.fixture
async def adapter(app: Any) -> AsyncIterator[FalAdapter]:
    adapter = _adapter(app)
    yield adapter
    await adapter.aclose()


def test_input_mapping_per_family() -> None:
    ultra = build_input(
        catalog_route("fal", "fal-ai/flux-pro/v1.1-ultra"),
        "p",
        {"aspect_ratio": "21:9", "raw": True, "output_format": "jpg", "safety_tolerance": 2,
         "image_prompt": "https://x/i.png", "steps": 9},
    )  # fmt: skip
    assert ultra == {
        "prompt": "p", "aspect_ratio": "21:9", "raw": True, "output_format": "jpeg",
        "safety_tolerance": "2", "image_url": "https://x/i.png",
    }  # fmt: skip
    flex = build_input(
        catalog_route("fal", "fal-ai/flux-2-flex"),
        "p",
        {"width": 800, "height": 600, "guidance": 4.5, "steps": 30},
    )
    assert flex == {
        "prompt": "p", "image_size": {"width": 800, "height": 600}, "guidance_scale": 4.5,
        "num_inference_steps": 30,
    }  # fmt: skip
    gpt = build_input(
        catalog_route("fal", "openai/gpt-image-2"),
        "p",
        {"aspect_ratio": "3:2", "quality": "low"},
        2,
    )
    assert gpt == {"prompt": "p", "image_size": "1536x1024", "quality": "low", "num_images": 2}
    ideogram = build_input(
        catalog_route("fal", "fal-ai/ideogram/v3", model="ideogram-v3-turbo"),
        "p",
        {"style_type": "Realistic", "magic_prompt_option": "Off"},
    )
    assert ideogram == {
        "prompt": "p", "style": "REALISTIC", "expand_prompt": False, "rendering_speed": "TURBO"
    }  # fmt: skip
    seedream = build_input(
        catalog_route("fal", "fal-ai/bytedance/seedream/v4/text-to-image"), "p", {"size": "4K"}
    )
    assert seedream == {"prompt": "p", "image_size": "auto_4K"}
    with pytest.raises(UpstreamRejected, match="no input mapping"):
        build_input(Route("fal", "someone/else"), "p", {})


def test_reference_images_select_the_edit_endpoint() -> None:
    images = {"image_input": ["https://x/a.png"]}
    assert (
        endpoint(catalog_route("fal", "fal-ai/nano-banana-pro"), images)
        == "fal-ai/nano-banana-pro/edit"
    )
    assert endpoint(catalog_route("fal", "fal-ai/nano-banana-pro"), {}) == "fal-ai/nano-banana-pro"
    assert (
        endpoint(catalog_route("fal", "fal-ai/bytedance/seedream/v4/text-to-image"), images)
        == "fal-ai/bytedance/seedream/v4/edit"
    )
    assert endpoint(
        catalog_route("fal", "fal-ai/flux-pro/v1.1-ultra"), {"input_images": ["x"]}
    ).endswith("ultra")


async def test_submit_poll_result_against_the_queue(app: Any, adapter: FalAdapter) -> None:
    params = {"aspect_ratio": "16:9", "output_format": "png", "seed": 5}
    request = _request(params=params)
    submitted = await adapter.submit(request)
    assert isinstance(submitted, Submitted)
    submit = app.state.requests[0]
    assert submit["method"] == "POST"
    assert submit["path"] == "/fal-ai/flux-pro/v1.1-ultra"
    assert submit["headers"]["authorization"] == f"Key {KEY}"
    assert submit["json"] == {
        "prompt": "a harbour at dawn", "aspect_ratio": "16:9", "seed": 5, "output_format": "png"
    }  # fmt: skip
    # The URLs fal returned drop the /v1.1-ultra sub-path; they are kept and reused as given.
    base = f"{BASE}/fal-ai/flux-pro/requests/{submitted.task_id}"
    assert submitted.state == {
        "status_url": f"{base}/status", "response_url": base, "cancel_url": f"{base}/cancel"
    }  # fmt: skip

    answer = await adapter.poll(request, TaskHandle(submitted.task_id, submitted.state))
    assert isinstance(answer, Finished)
    assert [r["path"] for r in app.state.requests[1:]] == [
        f"/fal-ai/flux-pro/requests/{submitted.task_id}/status",
        f"/fal-ai/flux-pro/requests/{submitted.task_id}",
    ]
    assert app.state.requests[1]["query"] == {"logs": "1"}
    assert len(answer.images) == 1 and answer.images[0].content_type == "image/png"
    image = await download(app, answer.images[0].url)
    assert image.format == "PNG" and image.size == (128, 72)


async def test_several_images_are_returned(app: Any, adapter: FalAdapter) -> None:
    request = _request("fal-ai/nano-banana-2", params={"output_format": "jpg"}, outputs=3)
    result = await run_to_finish(adapter, request)
    assert app.state.requests[0]["json"]["num_images"] == 3
    assert len(result.images) == 3
    for image in result.images:
        assert (await download(app, image.url)).format == "JPEG"


async def test_slow_request_reports_queue_then_progress(adapter: FalAdapter) -> None:
    request = _request(prompt="slow harbour")
    submitted = await adapter.submit(request)
    assert isinstance(submitted, Submitted)
    handle = TaskHandle(submitted.task_id, submitted.state)
    progress = []
    answer = await adapter.poll(request, handle)
    while isinstance(answer, Pending):
        progress.append(answer.progress)
        answer = await adapter.poll(request, handle)
    assert progress == [0, 50, 75]
    assert isinstance(answer, Finished)


async def test_content_policy_422_is_moderated(adapter: FalAdapter) -> None:
    with pytest.raises(UpstreamModerated, match="flagged by a content checker"):
        await run_to_finish(adapter, _request(prompt="moderate-me"))


async def test_nsfw_flag_is_moderated(adapter: FalAdapter) -> None:
    with pytest.raises(UpstreamModerated, match="NSFW"):
        await run_to_finish(adapter, _request(prompt="nsfw-me"))


async def test_invalid_input_is_rejected_with_fal_detail(adapter: FalAdapter) -> None:
    request = _request("fal-ai/flux-pro/v1.1", params={"output_format": "gif"})
    with pytest.raises(UpstreamRejected, match="output_format: unexpected value"):
        await run_to_finish(adapter, request)


async def test_rate_limit_is_retryable_with_retry_after(adapter: FalAdapter) -> None:
    with pytest.raises(UpstreamRetryable, match="Rate limit exceeded") as caught:
        await adapter.submit(_request(prompt="rate-limit-me"))
    assert caught.value.retry_after == 5


async def test_server_error_is_retryable(adapter: FalAdapter) -> None:
    with pytest.raises(UpstreamRetryable):
        await adapter.submit(_request(prompt="server-error"))


@pytest.mark.parametrize("key", ["wrong", None])
async def test_bad_or_missing_key_is_misconfigured(app: Any, key: str | None) -> None:
    adapter = _adapter(app, key)
    try:
        with pytest.raises(UpstreamMisconfigured):
            await adapter.submit(_request())
    finally:
        await adapter.aclose()


async def test_unknown_request_is_lost(adapter: FalAdapter) -> None:
    url = f"{BASE}/fal-ai/flux-pro/requests/nope"
    state = {"status_url": f"{url}/status", "response_url": url, "cancel_url": f"{url}/cancel"}
    with pytest.raises(UpstreamTaskLost):
        await adapter.poll(_request(), TaskHandle("nope", state))


async def test_cancel_uses_the_returned_cancel_url(app: Any, adapter: FalAdapter) -> None:
    request = _request(prompt="slow harbour")
    submitted = await adapter.submit(request)
    assert isinstance(submitted, Submitted)
    handle = TaskHandle(submitted.task_id, submitted.state)
    await adapter.cancel(request, handle)
    cancel = app.state.requests[-1]
    assert cancel["method"] == "PUT"
    assert cancel["path"] == f"/fal-ai/flux-pro/requests/{submitted.task_id}/cancel"
    assert app.state.jobs[submitted.task_id].status == "COMPLETED"
    await adapter.cancel(request, handle)  # already completed: not an error


async def test_foreign_status_urls_are_not_followed() -> None:
    """A status URL on another host would receive our key; the adapter rebuilds it instead."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200,
            json={"request_id": "r1", "status_url": "https://evil.test/s",
                  "response_url": "https://evil.test/r", "cancel_url": "https://evil.test/c"},
        )  # fmt: skip

    config = ProviderSettings(api_key=SecretStr(KEY))
    adapter = create_adapter(
        config, ProviderContext(fetch_input=fetch_input, transport=httpx2.MockTransport(handler))
    )
    try:
        submitted = await adapter.submit(_request("fal-ai/flux-2-pro/edit"))
    finally:
        await adapter.aclose()
    assert isinstance(submitted, Submitted)
    assert (
        submitted.state["status_url"]
        == "https://queue.fal.run/fal-ai/flux-2-pro/requests/r1/status"
    )
