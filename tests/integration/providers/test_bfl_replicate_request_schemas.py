"""The requests the BFL and Replicate adapters build, validated against the vendors' own schemas.

The schemas in ``schemas/`` are extracted from the vendors' published OpenAPI documents (see
``schemas/README.md``). Each case runs a job to the end against the vendor's fake, then validates
every request the fake recorded: a payload the vendor's schema refuses fails here even if the fake
were lenient. BFL's schemas allow unknown properties (its API ignores them silently), so the check
closes them: a field the endpoint does not know is a mapping bug that would go unnoticed upstream.

fal publishes only its platform API (no per-model input schemas) and DashScope's JSON files are
console metadata, not request schemas, so neither can be validated this way; their fakes check
the documented inputs instead.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from imagegate.providers import bfl, replicate
from imagegate.providers.port import (
    Finished,
    GenerationRequest,
    ProviderAdapter,
)
from imagegate.testing.fake_upstream import bfl as fake_bfl
from imagegate.testing.fake_upstream import replicate as fake_replicate
from tests.integration.providers.conftest import adapter_on, generation_request, run_to_finish
from tests.integration.providers.routes import catalog_route

SCHEMAS = Path(__file__).parent / "schemas"


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` refusing properties it does not declare."""
    return {**schema, "additionalProperties": False}


def _request(vendor: str, model: str, **params: Any) -> GenerationRequest:
    return generation_request(model, catalog_route(vendor, model), "a lighthouse at dawn", params)


async def _run(adapter: ProviderAdapter, request: GenerationRequest) -> Finished:
    return await run_to_finish(adapter, request, may_finish_at_submit=True)


@contextlib.asynccontextmanager
async def _adapter(
    module: Any, app: Any, key: str, base_url: str, **options: Any
) -> AsyncIterator[ProviderAdapter]:
    adapter: ProviderAdapter = adapter_on(
        module.create_adapter, app, api_key=key, base_url=base_url, options=options
    )
    try:
        yield adapter
    finally:
        await adapter.aclose()


INPUTS = [f"https://img.example/{n}.png" for n in range(1, 5)]

BFL_CASES = [
    pytest.param("flux-1.1-pro", {}, {}, id="pro-1.1-defaults"),
    pytest.param(
        "flux-1.1-pro",
        {"aspect_ratio": "9:16", "prompt_upsampling": True, "seed": 3, "output_format": "png"},
        {},
        id="pro-1.1-ratio",
    ),
    pytest.param(
        "flux-pro-1.1",
        {"width": 1000, "height": 2000, "image_prompt": INPUTS[0], "output_format": "jpg"},
        {},
        id="pro-1.1-size-redux",
    ),
    pytest.param(
        "flux-1.1-pro-ultra",
        {
            "aspect_ratio": "21:9",
            "raw": True,
            "image_prompt": INPUTS[0],
            "image_prompt_strength": 0.3,
            "output_format": "webp",
            "seed": 9,
        },
        {},
        id="ultra",
    ),
    pytest.param(
        "flux-2-pro",
        {"aspect_ratio": "4:3", "resolution": "2MP", "input_images": INPUTS[:2]},
        {},
        id="flux-2-pro-inputs",
    ),
    pytest.param(
        "flux-2-pro",
        {"input_images": INPUTS[:1]},
        {"inline_inputs": True, "safety_tolerance": 9},
        id="flux-2-pro-inline-capped-tolerance",
    ),
    pytest.param(
        "flux-2-flex",
        {"width": 2048, "height": 2048, "steps": 28, "guidance": 3.5, "prompt_upsampling": False},
        {},
        id="flux-2-flex",
    ),
    pytest.param("flux-2-max", {"aspect_ratio": "1:1", "resolution": "4MP"}, {}, id="flux-2-max"),
    pytest.param("flux-2-klein-9b", {"input_images": INPUTS}, {}, id="flux-2-klein"),
]


@pytest.mark.parametrize(("model", "params", "options"), BFL_CASES)
async def test_bfl_requests_match_the_openapi_schema(
    model: str, params: dict[str, Any], options: dict[str, Any]
) -> None:
    app = fake_bfl.create_app(polling_base="https://api.us1.bfl.ai")
    async with _adapter(bfl, app, "bfl_test_key", "https://api.bfl.ai", **options) as adapter:
        await _run(adapter, _request("bfl", model, **params))

    posts = [r for r in app.state.requests if r["method"] == "POST"]
    polls = [r for r in app.state.requests if r["path"] == "/v1/get_result"]
    assert len(posts) == 1 and polls
    endpoint = posts[0]["path"].removeprefix("/v1/")
    jsonschema.validate(posts[0]["json"], _closed(_schema(f"bfl_{endpoint}.json")))
    query = _closed(_schema("bfl_get_result.query.json"))
    for poll in polls:
        jsonschema.validate(poll["query"], query)


def test_bfl_closed_schema_catches_an_unknown_field() -> None:
    """The closing is what makes the check above bite on a misspelt field."""
    schema = _closed(_schema("bfl_flux-2-pro.json"))
    with pytest.raises(jsonschema.ValidationError, match="aspect_ratio"):
        jsonschema.validate({"prompt": "x", "aspect_ratio": "1:1"}, schema)


REPLICATE_CASES = [
    pytest.param("black-forest-labs/flux-2-pro", {"aspect_ratio": "16:9"}, 1, id="flux-2-pro"),
    pytest.param(
        "black-forest-labs/flux-1.1-pro-ultra", {"raw": True, "output_format": "jpg"}, 1, id="ultra"
    ),
    pytest.param("openai/gpt-image-1.5", {"quality": "low"}, 2, id="gpt-image-two"),
    pytest.param("google/nano-banana", {"output_format": "png"}, 1, id="nano-banana"),
    pytest.param("ideogram-ai/ideogram-v3-turbo", {"style_type": "AUTO"}, 1, id="ideogram"),
    pytest.param("bytedance/seedream-4", {"size": "2K"}, 2, id="seedream-two"),
    pytest.param("qwen/qwen-image", {"guidance_scale": 3.0}, 1, id="qwen"),
    pytest.param("wan-video/wan-2.7-image", {"aspect_ratio": "1:1"}, 1, id="wan"),
    pytest.param("black-forest-labs/flux-2-pro:3f1c2e", {}, 1, id="pinned-version"),
]


@pytest.mark.parametrize(("slug", "params", "outputs"), REPLICATE_CASES)
@pytest.mark.parametrize(
    "options", [{}, {"wait": 30, "cancel_after": "10m"}], ids=["async", "sync-wait"]
)
async def test_replicate_requests_match_the_openapi_schema(
    slug: str, params: dict[str, Any], outputs: int, options: dict[str, Any]
) -> None:
    app = fake_replicate.create_app()
    base = "https://api.replicate.com/v1"
    async with _adapter(replicate, app, "r8_test_token", base, **options) as adapter:
        request = _request("replicate", slug, **params)
        request = GenerationRequest(**{**request.__dict__, "outputs": outputs})
        finished = await _run(adapter, request)
    assert len(finished.images) == outputs

    creates = [r for r in app.state.requests if r["method"] == "POST"]
    assert len(creates) == 1
    create = creates[0]
    pinned = create["path"] == "/v1/predictions"
    assert pinned == (":" in slug)
    name = "replicate_version_prediction.json" if pinned else "replicate_model_prediction.json"
    jsonschema.validate(create["json"], _schema(name))
    headers = _schema("replicate_prediction.headers.json")
    sent = {
        declared: value
        for declared in headers["properties"]
        for key, value in create["headers"].items()
        if key.lower() == declared.lower()
    }
    jsonschema.validate(sent, headers)
    assert ("Prefer" in sent) == bool(options)
