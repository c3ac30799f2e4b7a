"""GPT Image edits send only ``CreateImageEditRequest`` fields, and the fake refuses any other.

``moderation`` is a ``CreateImageRequest`` field only; the edit endpoint has no such field.
"""

from __future__ import annotations

import httpx2

from imagegate.providers import openai
from imagegate.providers.port import GenerationRequest, ProviderContext
from imagegate.settings import ProviderSettings
from imagegate.testing.clock import FakeClock
from imagegate.testing.fake_upstream.openai import create_app
from imagegate.types import FetchedInput, Route
from tests.images import image_bytes

KEY = "sk-fake-openai"


async def _png(url: str) -> FetchedInput:
    return FetchedInput(data=image_bytes((32, 32), (10, 20, 30)), content_type="image/png", url=url)


def _request(params: dict[str, object]) -> GenerationRequest:
    return GenerationRequest(
        job_id="job-1",
        model="gpt-image-2",
        route=Route("openai", "gpt-image-2"),
        prompt="make it watercolour",
        params=params,
        outputs=1,
    )


async def test_a_gpt_image_2_edit_drops_moderation_and_the_generation_keeps_it() -> None:
    app = create_app(api_key=KEY)
    context = ProviderContext(
        fetch_input=_png, transport=httpx2.ASGITransport(app=app), clock=FakeClock()
    )
    config = ProviderSettings(api_key=KEY, base_url="https://api.openai.test/v1")
    adapter = openai.create_adapter(config, context)
    try:
        edit = {"moderation": "low", "input_images": ["https://cdn.example/a.png"]}
        await adapter.submit(_request(edit))
        await adapter.submit(_request({"moderation": "low"}))
    finally:
        await adapter.aclose()
    edited, generated = app.state.requests
    assert edited.path == "/v1/images/edits"
    assert "moderation" not in edited.form
    assert generated.path == "/v1/images/generations"
    assert generated.json["moderation"] == "low"


async def test_the_fake_refuses_moderation_on_an_edit_as_openai_does() -> None:
    app = create_app(api_key=KEY)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="https://api.openai.test"
    ) as client:
        response = await client.post(
            "/v1/images/edits",
            headers={"Authorization": f"Bearer {KEY}"},
            data={"model": "gpt-image-2", "prompt": "x", "moderation": "low"},
            files=[("image[]", ("a.png", image_bytes((32, 32), (1, 2, 3)), "image/png"))],
        )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "moderation"
