"""Fake vendors refuse what the vendors' published descriptions refuse, and take what they allow.

A fake looser than its vendor hides adapter bugs: the adapter's request passes here and fails in
production. Each case reads the allowed values from the vendor schema kept in ``schemas/`` (see
its README for the source file and commit), sends the fake every allowed value and at least one
the description refuses, and checks the fake's answer. The OpenAI fake's refusal of
``moderation`` on an edit is pinned in ``test_openai_edit_fields.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from imagegate.testing.fake_upstream import ideogram as fake_ideogram
from imagegate.testing.fake_upstream import replicate as fake_replicate

SCHEMAS = Path(__file__).parent / "schemas"
IDEOGRAM_KEY = "ideogram-key"
REPLICATE_TOKEN = "r8_fake"
REPLICATE_MODEL = "/v1/models/black-forest-labs/flux-1.1-pro/predictions"


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    return schema


@pytest.fixture
async def ideogram() -> AsyncIterator[httpx2.AsyncClient]:
    app = fake_ideogram.create_app(api_key=IDEOGRAM_KEY)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app),
        base_url="https://api.ideogram.test",
        headers={"Api-Key": IDEOGRAM_KEY},
    ) as client:
        yield client


@pytest.fixture
async def replicate() -> AsyncIterator[httpx2.AsyncClient]:
    app = fake_replicate.create_app(token=REPLICATE_TOKEN)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app),
        base_url="https://api.replicate.test",
        headers={"Authorization": f"Bearer {REPLICATE_TOKEN}"},
    ) as client:
        yield client


async def _ideogram_v3(client: httpx2.AsyncClient, **fields: str) -> httpx2.Response:
    return await client.post(
        "/v1/ideogram-v3/generate", files=[(name, (None, value)) for name, value in fields.items()]
    )


async def test_the_ideogram_fake_takes_every_v3_resolution_ideogram_lists(
    ideogram: httpx2.AsyncClient,
) -> None:
    listed = _schema("ideogram_v3_generate.json")["properties"]["resolution"]["enum"]
    assert len(listed) > 50
    for resolution in listed:
        response = await _ideogram_v3(ideogram, prompt="a fox", resolution=resolution)
        assert response.status_code == 200, (resolution, response.text)
        [image] = response.json()["data"]
        assert image["resolution"] == resolution


@pytest.mark.parametrize("resolution", ["1000x1000", "1024x1025", "2048x2048", "1024*1024", "1K"])
async def test_the_ideogram_fake_refuses_a_v3_resolution_outside_resolution_v3(
    ideogram: httpx2.AsyncClient, resolution: str
) -> None:
    listed = _schema("ideogram_v3_generate.json")["properties"]["resolution"]["enum"]
    assert resolution not in listed
    response = await _ideogram_v3(ideogram, prompt="a fox", resolution=resolution)
    assert response.status_code == 400
    assert response.json()["error"] == f"Invalid resolution: {resolution}"


async def test_the_ideogram_fake_refuses_a_legacy_resolution_outside_resolution(
    ideogram: httpx2.AsyncClient,
) -> None:
    image_request = _schema("ideogram_generate.json")["properties"]["image_request"]
    listed = image_request["properties"]["resolution"]["enum"]
    taken = await ideogram.post(
        "/generate",
        json={"image_request": {"prompt": "a fox", "model": "V_2", "resolution": listed[0]}},
    )
    assert taken.status_code == 200, taken.text
    refused = await ideogram.post(
        "/generate",
        json={"image_request": {"prompt": "a fox", "model": "V_2", "resolution": "1024x1024"}},
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "Invalid resolution: 1024x1024"


def _envelope() -> dict[str, Any]:
    return _schema("replicate_model_prediction.json")


async def test_the_replicate_fake_takes_every_envelope_field_replicate_describes(
    replicate: httpx2.AsyncClient,
) -> None:
    envelope = _envelope()
    events = envelope["properties"]["webhook_events_filter"]["items"]["enum"]
    body = {
        "input": {"prompt": "a fox"},
        "stream": False,
        "webhook": "https://hooks.example/replicate",
        "webhook_events_filter": events,
    }
    assert set(body) == set(envelope["properties"])
    response = await replicate.post(REPLICATE_MODEL, json=body)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("field", ["version", "model", "webhook_url", "inputs"])
async def test_the_replicate_fake_refuses_a_field_the_closed_envelope_lacks(
    replicate: httpx2.AsyncClient, field: str
) -> None:
    envelope = _envelope()
    assert envelope["additionalProperties"] is False
    assert field not in envelope["properties"]
    response = await replicate.post(
        REPLICATE_MODEL, json={"input": {"prompt": "a fox"}, field: "x"}
    )
    assert response.status_code == 422
    assert f"Additional properties are not allowed: ['{field}']" in response.json()["detail"]


@pytest.mark.parametrize("events", [["done"], ["completed", "succeeded"], "completed"])
async def test_the_replicate_fake_refuses_webhook_events_outside_the_four(
    replicate: httpx2.AsyncClient, events: Any
) -> None:
    response = await replicate.post(
        REPLICATE_MODEL,
        json={
            "input": {"prompt": "a fox"},
            "webhook": "https://hooks.example/replicate",
            "webhook_events_filter": events,
        },
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("webhook_events_filter items must be one of")


def _prefer_range() -> tuple[int, int]:
    """The seconds ``Prefer: wait=n`` may name, from the header's description ("between 1 and
    60"); the pattern beside it alone would admit up to 99."""
    header = _schema("replicate_prediction.headers.json")["properties"]["Prefer"]
    described = re.search(r"between (\d+) and (\d+)", header["description"])
    assert described is not None, header["description"]
    return int(described[1]), int(described[2])


async def test_the_replicate_fake_takes_prefer_wait_from_one_to_sixty_seconds(
    replicate: httpx2.AsyncClient,
) -> None:
    low, high = _prefer_range()
    pattern = _schema("replicate_prediction.headers.json")["properties"]["Prefer"]["pattern"]
    assert (low, high) == (1, 60)
    for prefer in ("wait", *(f"wait={n}" for n in range(low, high + 1))):
        assert re.fullmatch(pattern, prefer)
        response = await replicate.post(
            REPLICATE_MODEL, json={"input": {"prompt": "a fox"}}, headers={"Prefer": prefer}
        )
        assert response.status_code == 201, (prefer, response.text)


@pytest.mark.parametrize("prefer", ["wait=0", "wait=61", "wait=99", "wait=5s", "respond-async"])
async def test_the_replicate_fake_refuses_prefer_wait_outside_the_range(
    replicate: httpx2.AsyncClient, prefer: str
) -> None:
    response = await replicate.post(
        REPLICATE_MODEL, json={"input": {"prompt": "a fox"}}, headers={"Prefer": prefer}
    )
    assert response.status_code == 400
    assert response.json()["detail"] == f"Invalid Prefer header: {prefer}"


@pytest.mark.parametrize(
    ("model", "schema", "taken", "refused"),
    [
        ("ideogram-v3-turbo", "ideogram_v3_generate.json", "1536x640", "720x1280"),
        ("ideogram-v2", "ideogram_generate.json", "720x1280", "800x1280"),
    ],
)
async def test_the_replicate_fake_holds_ideogram_resolutions_to_ideograms_enums(
    replicate: httpx2.AsyncClient, model: str, schema: str, taken: str, refused: str
) -> None:
    """Replicate's Ideogram models relay Ideogram's own resolution enums."""
    properties = _schema(schema)["properties"]
    listed = properties.get("resolution") or properties["image_request"]["properties"]["resolution"]
    spelled = {value.removeprefix("RESOLUTION_").replace("_", "x") for value in listed["enum"]}
    assert taken in spelled and refused not in spelled
    path = f"/v1/models/ideogram-ai/{model}/predictions"
    ok = await replicate.post(path, json={"input": {"prompt": "a fox", "resolution": taken}})
    assert ok.status_code == 201, ok.text
    bad = await replicate.post(path, json={"input": {"prompt": "a fox", "resolution": refused}})
    assert bad.status_code == 422
    assert bad.json()["invalid_fields"][0]["field"] == "input.resolution"
