"""The fakes refuse what their vendors' published descriptions refuse.

Ideogram: ``resolution`` is the ``Resolution``/``ResolutionV3`` enum, not any ``WxH``. Replicate:
the create body is ``schemas_prediction_request`` (``additionalProperties: false``, webhook events
``start``/``output``/``logs``/``completed``) and ``Prefer: wait=n`` takes 1 to 60 seconds.
OpenAI: ``CreateImageEditRequest`` has no ``moderation``.
"""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from imagegate.testing.fake_upstream import ideogram, replicate
from imagegate.testing.fake_upstream.openai import create_app as openai_app
from tests.images import image_bytes

REPLICATE_TOKEN = "r8_test_token"


async def _post(app: Any, path: str, **kwargs: Any) -> httpx2.Response:
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="https://fake.test"
    ) as client:
        return await client.post(path, **kwargs)


def _ideogram_v3(resolution: str) -> dict[str, Any]:
    return {
        "headers": {"Api-Key": ideogram.API_KEY},
        "files": [
            ("prompt", (None, "a fox", None)),
            ("rendering_speed", (None, "TURBO", None)),
            ("resolution", (None, resolution, None)),
        ],
    }


async def test_ideogram_3_refuses_a_resolution_outside_its_enum() -> None:
    app = ideogram.create_app()
    refused = await _post(app, "/v1/ideogram-v3/generate", **_ideogram_v3("1000x1000"))
    taken = await _post(app, "/v1/ideogram-v3/generate", **_ideogram_v3("1024x1024"))
    assert refused.status_code == 400
    assert "resolution" in refused.json()["error"]
    assert taken.status_code == 200


async def test_legacy_ideogram_refuses_a_resolution_outside_its_enum() -> None:
    app = ideogram.create_app()
    headers = {"Api-Key": ideogram.API_KEY}
    refused = await _post(
        app,
        "/generate",
        headers=headers,
        json={"image_request": {"prompt": "a fox", "resolution": "RESOLUTION_1000_1000"}},
    )
    taken = await _post(
        app,
        "/generate",
        headers=headers,
        json={"image_request": {"prompt": "a fox", "resolution": "RESOLUTION_1024_1024"}},
    )
    assert refused.status_code == 400
    assert taken.status_code == 200


def _prediction(body: dict[str, Any], prefer: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {REPLICATE_TOKEN}"}
    if prefer is not None:
        headers["Prefer"] = prefer
    return {"headers": headers, "json": body}


PATH = "/v1/models/qwen/qwen-image/predictions"


@pytest.mark.parametrize(
    ("body", "prefer"),
    [
        pytest.param({"input": {"prompt": "a fox"}, "webhook_url": "https://x"}, None, id="extra"),
        pytest.param(
            {"input": {"prompt": "a fox"}, "webhook_events_filter": ["done"]}, None, id="events"
        ),
        pytest.param({"input": {"prompt": "a fox"}}, "wait=61", id="wait-61"),
    ],
)
async def test_replicate_refuses_what_its_prediction_request_schema_forbids(
    body: dict[str, Any], prefer: str | None
) -> None:
    response = await _post(replicate.create_app(), PATH, **_prediction(body, prefer))
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_replicate_takes_a_documented_envelope() -> None:
    body = {
        "input": {"prompt": "a fox"},
        "webhook": "https://hooks.example/r",
        "webhook_events_filter": ["completed"],
    }
    response = await _post(replicate.create_app(), PATH, **_prediction(body, "wait=60"))
    assert response.status_code == 201


async def test_openai_refuses_moderation_on_an_edit_but_not_on_a_generation() -> None:
    app = openai_app(api_key="sk-x")
    headers = {"Authorization": "Bearer sk-x"}
    edit = await _post(
        app,
        "/v1/images/edits",
        headers=headers,
        data={"model": "gpt-image-2", "prompt": "x", "moderation": "low"},
        files=[("image[]", ("a.png", image_bytes((32, 32), (1, 2, 3)), "image/png"))],
    )
    generation = await _post(
        app,
        "/v1/images/generations",
        headers=headers,
        json={"model": "gpt-image-2", "prompt": "x", "moderation": "low"},
    )
    assert edit.status_code == 400
    assert edit.json()["error"]["param"] == "moderation"
    assert generation.status_code == 200
