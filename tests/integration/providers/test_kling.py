"""The Kling adapter against the fake Kling server, in-process."""

from __future__ import annotations

import base64
import contextlib
import io
import json
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
from imagegate.providers import kling
from imagegate.providers.port import (
    Finished,
    GenerationRequest,
    Pending,
    ProviderContext,
    TaskHandle,
)
from imagegate.settings import ProviderSettings
from imagegate.testing.clock import FakeClock
from imagegate.testing.fake_upstream.kling import create_app
from imagegate.types import Route
from tests.images import image_bytes
from tests.integration.providers.conftest import adapter_on, generation_request, input_fetcher

AK, SK = "ak-test", "sk-test"


fetch_input = input_fetcher(image_bytes((8, 8), (20, 20, 220)))


def request(prompt: str = "a koi pond", outputs: int = 1, **params: Any) -> GenerationRequest:
    return generation_request(
        "kling-image", Route("kling", "kling-image"), prompt, params, outputs=outputs
    )


class Harness:
    def __init__(
        self, app: Any, adapter: kling.KlingAdapter, transport: Any, clock: FakeClock
    ) -> None:
        self.app = app
        self.adapter = adapter
        self.transport = transport
        self.clock = clock

    @property
    def requests(self) -> list[dict[str, Any]]:
        return [r for r in self.app.state.requests if r["path"].startswith("/v1/")]

    async def run(self, req: GenerationRequest) -> tuple[Finished, list[Pending]]:
        submitted = await self.adapter.submit(req)
        handle = TaskHandle(submitted.task_id, submitted.state)
        pending: list[Pending] = []
        for _ in range(10):
            polled = await self.adapter.poll(req, handle)
            if isinstance(polled, Finished):
                return polled, pending
            pending.append(polled)
        raise AssertionError("task never finished")


@contextlib.asynccontextmanager
async def _harness(
    api_key: str | None = None, options: dict[str, Any] | None = None
) -> AsyncIterator[Harness]:
    clock = FakeClock()
    app = create_app(clock=clock)
    adapter = adapter_on(
        kling.create_adapter,
        app,
        api_key=api_key or None,
        base_url="http://kling.test",
        options=options if options is not None else {"access_key": AK, "secret_key": SK},
        fetch_input=fetch_input,
        clock=clock,
    )
    try:
        yield Harness(app, adapter, httpx2.ASGITransport(app=app), clock)
    finally:
        await adapter.aclose()


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with _harness() as h:
        yield h


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


async def test_text_to_image_payload_jwt_and_multiple_images(harness: Harness) -> None:
    req = request(outputs=3, model_name="kling-v2", aspect_ratio="3:2", negative_prompt="people")
    finished, _ = await harness.run(req)

    submit = harness.requests[0]
    assert submit["method"] == "POST" and submit["path"] == "/v1/images/generations"
    assert submit["json"] == {
        "model_name": "kling-v2",
        "prompt": "a koi pond",
        "n": 3,
        "aspect_ratio": "3:2",
        "negative_prompt": "people",
    }
    token = submit["headers"]["authorization"].removeprefix("Bearer ")
    now = harness.clock.now_ms() // 1000
    assert _claims(token) == {"iss": AK, "exp": now + 1800, "nbf": now - 5}
    assert submit["claims"] is not None  # the fake verified the HS256 signature

    assert finished.served_model == "kling-v2"
    assert len(finished.images) == 3
    async with httpx2.AsyncClient(transport=harness.transport) as client:
        for image in finished.images:
            response = await client.get(str(image.url))
            picture = Image.open(io.BytesIO(response.content))
            assert picture.format == "PNG"
            assert picture.width / picture.height == pytest.approx(3 / 2, rel=0.02)


async def test_image_to_image_drops_negative_prompt_and_sends_reference() -> None:
    async with _harness(api_key=f"{AK}:{SK}", options={"inline_inputs": True}) as h:
        req = request(
            model_name="kling-v1-5",
            image="https://img.example/ref.png",
            image_fidelity=0.7,
            negative_prompt="ignored with an image",
        )
        await h.run(req)
        body = h.requests[0]["json"]
        assert base64.b64decode(body["image"]) == image_bytes((8, 8), (20, 20, 220))
        assert body["image_fidelity"] == 0.7
        assert body["image_reference"] == "subject"
        assert "negative_prompt" not in body


async def test_defaults_to_kling_v1(harness: Harness) -> None:
    finished, _ = await harness.run(request())
    assert harness.requests[0]["json"]["model_name"] == "kling-v1"
    assert finished.served_model == "kling-v1"


async def test_slow_task_is_pending_until_it_succeeds(harness: Harness) -> None:
    finished, pending = await harness.run(request("slow sunrise", outputs=2))
    assert len(pending) == 3
    assert all(p.progress is None and p.poll_after == 3.0 for p in pending)
    assert len(finished.images) == 2


async def test_token_is_reminted_before_expiry(harness: Harness) -> None:
    req = request("slow tide")
    submitted = await harness.adapter.submit(req)
    handle = TaskHandle(submitted.task_id, submitted.state)
    first = harness.requests[-1]["headers"]["authorization"]
    harness.clock.advance(20 * 60)
    await harness.adapter.poll(req, handle)
    assert harness.requests[-1]["headers"]["authorization"] == first
    harness.clock.advance(6 * 60)  # 26 minutes: inside the refresh margin
    assert isinstance(await harness.adapter.poll(req, handle), Pending)
    second = harness.requests[-1]["headers"]["authorization"]
    assert second != first
    assert _claims(second)["exp"] == harness.clock.now_ms() // 1000 + 1800


async def test_submit_moderation_is_moderated(harness: Harness) -> None:
    with pytest.raises(UpstreamModerated, match="risk control"):
        await harness.adapter.submit(request("moderate-me"))


async def test_failed_risk_check_is_moderated(harness: Harness) -> None:
    with pytest.raises(UpstreamModerated):
        await harness.run(request("moderate-output"))


async def test_failed_task_passes_message(harness: Harness) -> None:
    with pytest.raises(UpstreamRejected, match="Image generation failed"):
        await harness.run(request("fail-me"))


async def test_rate_limit_is_retryable_with_retry_after(harness: Harness) -> None:
    with pytest.raises(UpstreamRetryable) as caught:
        await harness.adapter.submit(request("rate-limit-me"))
    assert caught.value.retry_after == 4
    assert "1302" in caught.value.message


async def test_server_error_is_retryable(harness: Harness) -> None:
    with pytest.raises(UpstreamRetryable):
        await harness.adapter.submit(request("server-error"))


async def test_exhausted_resource_pack_is_not_retried(harness: Harness) -> None:
    with pytest.raises(UpstreamMisconfigured, match="balance"):
        await harness.adapter.submit(request("no-credits"))


async def test_wrong_secret_is_misconfigured() -> None:
    async with _harness(options={"access_key": AK, "secret_key": "wrong"}) as h:
        with pytest.raises(UpstreamMisconfigured, match="Authorization is invalid"):
            await h.adapter.submit(request())


async def test_invalid_request_is_rejected_with_vendor_message(harness: Harness) -> None:
    with pytest.raises(UpstreamRejected, match="n must be between 1 and 9"):
        await harness.adapter.submit(request(outputs=12))


async def test_unknown_task_is_lost(harness: Harness) -> None:
    with pytest.raises(UpstreamTaskLost):
        await harness.adapter.poll(request(), TaskHandle("no-such-task"))


async def test_missing_credentials_fail_at_startup() -> None:
    transport = httpx2.ASGITransport(app=create_app())
    context = ProviderContext(fetch_input=fetch_input, transport=transport)
    with pytest.raises(ValueError, match="access_key"):
        kling.create_adapter(ProviderSettings(api_key=SecretStr("no-colon")), context)
