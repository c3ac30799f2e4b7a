"""The DashScope adapter against the fake DashScope server, in-process."""

from __future__ import annotations

import base64
import contextlib
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from PIL import Image
from pydantic import SecretStr

from imagegate.errors import (
    UpstreamError,
    UpstreamMisconfigured,
    UpstreamModerated,
    UpstreamRejected,
    UpstreamRetryable,
    UpstreamTaskLost,
)
from imagegate.providers import dashscope
from imagegate.providers.port import (
    Finished,
    GenerationRequest,
    Pending,
    ProviderContext,
    Submitted,
    TaskHandle,
)
from imagegate.settings import ProviderSettings
from imagegate.testing.fake_upstream.dashscope import create_app
from tests.images import image_bytes
from tests.integration.providers.conftest import adapter_on, generation_request, input_fetcher
from tests.integration.providers.routes import catalog_route

KEY = "sk-test"
SYNTHESIS = "/api/v1/services/aigc/text2image/image-synthesis"
GENERATION = "/api/v1/services/aigc/image-generation/generation"
MULTIMODAL = "/api/v1/services/aigc/multimodal-generation/generation"


fetch_input = input_fetcher(image_bytes((8, 8), (200, 10, 30)))


def request(
    upstream: str, prompt: str = "a lantern", outputs: int = 1, **params: Any
) -> GenerationRequest:
    return generation_request(
        "m", catalog_route("dashscope", upstream), prompt, params, outputs=outputs
    )


class Harness:
    def __init__(self, app: Any, adapter: dashscope.DashScopeAdapter, transport: Any) -> None:
        self.app = app
        self.adapter = adapter
        self.transport = transport

    @property
    def requests(self) -> list[dict[str, Any]]:
        return [r for r in self.app.state.requests if r["path"].startswith("/api/")]

    async def run(self, req: GenerationRequest) -> tuple[Finished, list[int | None]]:
        submitted = await self.adapter.submit(req)
        if isinstance(submitted, Finished):
            return submitted, []
        handle = TaskHandle(submitted.task_id, submitted.state)
        progress: list[int | None] = []
        for _ in range(20):
            polled = await self.adapter.poll(req, handle)
            if isinstance(polled, Finished):
                return polled, progress
            progress.append(polled.progress)
        raise AssertionError("task never finished")

    async def pictures(self, finished: Finished) -> list[Image.Image]:
        pictures = []
        async with httpx2.AsyncClient(transport=self.transport) as client:
            for image in finished.images:
                assert image.url is not None and image.content_type == "image/png"
                response = await client.get(image.url)
                assert response.status_code == 200
                pictures.append(Image.open(io.BytesIO(response.content)))
        return pictures


@contextlib.asynccontextmanager
async def _harness(
    api_key: str = KEY, options: dict[str, Any] | None = None
) -> AsyncIterator[Harness]:
    app = create_app()
    adapter = adapter_on(
        dashscope.create_adapter,
        app,
        api_key=api_key,
        base_url="http://dashscope.test",
        options=options,
        fetch_input=fetch_input,
    )
    try:
        yield Harness(app, adapter, httpx2.ASGITransport(app=app))
    finally:
        await adapter.aclose()


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with _harness() as h:
        yield h


async def test_qwen_image_uses_async_synthesis_task(harness: Harness) -> None:
    req = request(
        "qwen-image-plus",
        image_size="portrait_16_9",
        negative_prompt="blurry",
        seed=11,
        num_inference_steps=30,
    )
    finished, _ = await harness.run(req)

    submit = harness.requests[0]
    assert submit["path"] == SYNTHESIS
    assert submit["headers"]["authorization"] == f"Bearer {KEY}"
    assert submit["headers"]["x-dashscope-async"] == "enable"
    assert submit["json"] == {
        "model": "qwen-image-plus",
        "input": {"prompt": "a lantern", "negative_prompt": "blurry"},
        "parameters": {"watermark": False, "n": 1, "size": "928*1664", "seed": 11},
    }
    (task_id,) = harness.app.state.tasks
    assert harness.requests[1]["method"] == "GET"
    assert harness.requests[1]["path"] == f"/api/v1/tasks/{task_id}"

    assert finished.served_model == "qwen-image-plus"
    (picture,) = await harness.pictures(finished)
    assert picture.format == "PNG"
    assert picture.height > picture.width


async def test_qwen_image_fans_out_one_task_per_image_with_progress(harness: Harness) -> None:
    finished, progress = await harness.run(request("qwen-image", "slow fox", outputs=2))
    submits = [r for r in harness.requests if r["method"] == "POST"]
    assert len(submits) == 2
    assert all(r["json"]["parameters"]["n"] == 1 for r in submits)
    assert progress[0] == 0
    assert 50 in progress
    assert len(await harness.pictures(finished)) == 2


async def test_wan_27_uses_async_generation_with_messages(harness: Harness) -> None:
    req = request(
        "wan2.7-image",
        "slow harbour",
        outputs=4,
        aspect_ratio="16:9",
        image="https://img.example/ref.png",
        seed=5,
        thinking_mode=False,
    )
    finished, progress = await harness.run(req)
    submit = harness.requests[0]
    assert submit["path"] == GENERATION
    assert submit["headers"]["x-dashscope-async"] == "enable"
    body = submit["json"]
    assert body["model"] == "wan2.7-image"
    assert body["input"]["messages"] == [
        {
            "role": "user",
            "content": [{"text": "slow harbour"}, {"image": "https://img.example/ref.png"}],
        }
    ]
    parameters = body["parameters"]
    assert parameters["n"] == 4 and parameters["seed"] == 5
    assert parameters["thinking_mode"] is False
    width, height = (int(v) for v in parameters["size"].split("*"))
    assert width / height == pytest.approx(16 / 9, rel=0.02)
    assert progress[0] is None  # PENDING reports nothing
    assert any(p is not None and 0 < p < 100 for p in progress)
    pictures = await harness.pictures(finished)
    assert len(pictures) == 4
    assert pictures[0].width / pictures[0].height == pytest.approx(16 / 9, rel=0.05)


async def test_wan_26_text_to_image_uses_interleaved_mode(harness: Harness) -> None:
    req = request("wan2.6-image", outputs=2, aspect_ratio="3:2", negative_prompt="text")
    finished, _ = await harness.run(req)
    parameters = harness.requests[0]["json"]["parameters"]
    assert parameters["enable_interleave"] is True
    assert (parameters["n"], parameters["max_images"]) == (1, 2)
    assert parameters["negative_prompt"] == "text"
    assert parameters["size"] == "1200*800"
    assert len(await harness.pictures(finished)) == 2


async def test_wan_26_edit_sends_n_and_prompt_extend(harness: Harness) -> None:
    req = request(
        "wan2.6-image", image="https://img.example/in.png", prompt_extend=False, aspect_ratio="1:1"
    )
    finished, _ = await harness.run(req)
    parameters = harness.requests[0]["json"]["parameters"]
    assert parameters["enable_interleave"] is False
    assert parameters["n"] == 1  # never the vendor's default of 4
    assert parameters["prompt_extend"] is False
    assert parameters["size"] == "1280*1280"
    assert len(finished.images) == 1


async def test_qwen_image_2_is_synchronous(harness: Harness) -> None:
    submitted = await harness.adapter.submit(
        request("qwen-image-2.0-pro", aspect_ratio="4:3", image="https://img.example/in.png")
    )
    assert isinstance(submitted, Finished)
    submit = harness.requests[0]
    assert submit["path"] == MULTIMODAL
    assert "x-dashscope-async" not in submit["headers"]
    assert submit["json"]["parameters"]["size"] == "2368*1728"
    (picture,) = await harness.pictures(submitted)
    assert picture.width > picture.height


async def test_qwen_image_edit_runs_on_edit_model_with_inline_input() -> None:
    async with _harness(options={"inline_inputs": True, "edit_model": "qwen-image-edit-max"}) as h:
        submitted = await h.adapter.submit(
            request("qwen-image", image_url="https://img.example/in.png", task_type="image-edit")
        )
        assert isinstance(submitted, Finished)
        body = h.requests[0]["json"]
        assert h.requests[0]["path"] == MULTIMODAL
        assert body["model"] == "qwen-image-edit-max"
        image = body["input"]["messages"][0]["content"][1]["image"]
        assert image.startswith("data:image/png;base64,")
        assert base64.b64decode(image.split(",", 1)[1]) == image_bytes((8, 8), (200, 10, 30))


async def test_input_moderation_raises_moderated(harness: Harness) -> None:
    with pytest.raises(UpstreamModerated, match="DataInspectionFailed"):
        await harness.adapter.submit(request("wan2.6-image", "moderate-me"))


async def test_output_moderation_in_task_raises_moderated(harness: Harness) -> None:
    with pytest.raises(UpstreamModerated, match="Output data"):
        await harness.run(request("qwen-image-plus", "moderate-output"))


async def test_failed_task_passes_vendor_message(harness: Harness) -> None:
    with pytest.raises(UpstreamRejected, match="Algorithm process error"):
        await harness.run(request("wan2.7-image", "fail-me"))


async def test_throttling_is_retryable_with_retry_after(harness: Harness) -> None:
    with pytest.raises(UpstreamRetryable) as caught:
        await harness.adapter.submit(request("qwen-image-plus", "rate-limit-me"))
    assert caught.value.retry_after == 3
    assert "Throttling.RateQuota" in caught.value.message


async def test_internal_error_is_retryable(harness: Harness) -> None:
    with pytest.raises(UpstreamRetryable):
        await harness.adapter.submit(request("qwen-image-2.0", "server-error"))


async def test_invalid_api_key_is_misconfigured() -> None:
    async with _harness(api_key="sk-wrong") as h:
        with pytest.raises(UpstreamMisconfigured, match="Invalid API-key provided"):
            await h.adapter.submit(request("qwen-image-plus"))


async def test_invalid_parameter_is_rejected_with_vendor_message(harness: Harness) -> None:
    with pytest.raises(UpstreamRejected, match="n must be between 1 and 1 for qwen-image-max"):
        await harness.adapter.submit(request("qwen-image-max", outputs=2))


async def test_unknown_task_is_lost(harness: Harness) -> None:
    with pytest.raises(UpstreamTaskLost):
        await harness.adapter.poll(request("wan2.7-image"), TaskHandle("no-such-task"))


async def test_cancel_pending_task_then_poll_reports_canceled(harness: Harness) -> None:
    req = request("wan2.7-image", "slow owl")
    submitted = await harness.adapter.submit(req)
    assert isinstance(submitted, Submitted)
    handle = TaskHandle(submitted.task_id, submitted.state)
    await harness.adapter.cancel(req, handle)
    assert harness.requests[-1]["path"] == f"/api/v1/tasks/{submitted.task_id}/cancel"
    with pytest.raises(UpstreamError, match="canceled"):
        await harness.adapter.poll(req, handle)


async def test_cancel_of_running_task_is_quietly_ignored(harness: Harness) -> None:
    req = request("wan2.7-image", "slow owl")
    submitted = await harness.adapter.submit(req)
    assert isinstance(submitted, Submitted)
    handle = TaskHandle(submitted.task_id, submitted.state)
    assert isinstance(await harness.adapter.poll(req, handle), Pending)
    assert isinstance(await harness.adapter.poll(req, handle), Pending)  # RUNNING now
    await harness.adapter.cancel(req, handle)
    assert isinstance(await harness.adapter.poll(req, handle), Finished)


async def test_region_option_picks_the_host() -> None:
    transport = httpx2.ASGITransport(app=create_app())
    context = ProviderContext(fetch_input=fetch_input, transport=transport)
    for region, host in [("cn", "dashscope.aliyuncs.com"), ("us", "dashscope-us.aliyuncs.com")]:
        config = ProviderSettings(api_key=SecretStr(KEY), options={"region": region})
        adapter = dashscope.create_adapter(config, context)
        try:
            submitted = await adapter.submit(request("wan2.7-image"))
            assert isinstance(submitted, Submitted)
        finally:
            await adapter.aclose()
        app_requests = transport.app.state.requests  # type: ignore[attr-defined]
        assert app_requests[-1]["headers"]["host"] == host
    with pytest.raises(ValueError, match="unknown region"):
        dashscope.create_adapter(
            ProviderSettings(api_key=SecretStr(KEY), options={"region": "mars"}), context
        )
