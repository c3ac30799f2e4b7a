"""Every request the OpenAI and Ideogram adapters send validates against the vendor's own schema.

Both vendors publish an OpenAPI description; the request schemas were extracted from it into
``schemas/`` (see its README). Each job below runs against the vendor's fake, and every request
the fake recorded is validated with ``jsonschema``: JSON bodies as they are, multipart bodies as
the object their form fields and files describe (``image[]`` parts are the array ``image``, text
fields are read as the type the schema declares, files are ``"<binary>"``). A field the schema
does not declare fails too: the descriptions allow extra fields, the vendors do not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from imagegate.providers import ideogram, openai
from imagegate.providers.port import Finished, GenerationRequest
from imagegate.testing.fake_upstream import ideogram as fake_ideogram
from imagegate.testing.fake_upstream import openai as fake_openai
from tests.images import image_bytes
from tests.integration.providers.conftest import adapter_on, input_fetcher
from tests.integration.providers.routes import catalog_route

SCHEMAS = Path(__file__).parent / "schemas"
BINARY = "<binary>"


@cache
def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.json").read_text())
    return loaded


def _types(node: Mapping[str, Any]) -> set[str]:
    """Every JSON type a (sub)schema accepts, through ``anyOf``/``oneOf``/``allOf``."""
    declared = node.get("type")
    found = {declared} if isinstance(declared, str) else set(declared or ())
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in node.get(key) or ():
            found |= _types(branch)
    return found


def _read(text: str, accepted: set[str]) -> Any:
    """A multipart text field as the type its property declares (left as text when unreadable)."""
    try:
        if "integer" in accepted:
            return int(text)
        if "number" in accepted:
            return float(text)
        if "boolean" in accepted and text in ("true", "false"):
            return text == "true"
        if accepted & {"object", "array"} and "string" not in accepted:
            return json.loads(text)
    except ValueError:
        return text
    return text


def form_object(
    fields: Mapping[str, str], files: Mapping[str, int], body_schema: Mapping[str, Any]
) -> dict[str, Any]:
    """The object a multipart body stands for: ``fields`` text parts, ``files`` name → count."""
    properties = _properties(body_schema)
    out: dict[str, Any] = {}
    for name, text in fields.items():
        out[name] = _read(text, _types(properties.get(name, {})))
    for name, count in files.items():
        key = name.removesuffix("[]")
        accepted = _types(properties.get(key, {}))
        as_array = name.endswith("[]") or count > 1 or "string" not in accepted
        out[key] = [BINARY] * count if as_array else BINARY
    return out


def _properties(node: Mapping[str, Any]) -> dict[str, Any]:
    """The properties a (sub)schema declares, its ``allOf`` parts included."""
    declared = dict(node.get("properties") or {})
    for branch in node.get("allOf") or ():
        declared |= _properties(branch)
    return declared


def undeclared(instance: Any, node: Mapping[str, Any], path: str = "") -> Iterator[str]:
    """Paths of object keys that ``node`` does not declare (nested objects included)."""
    declared = _properties(node)
    if not isinstance(instance, dict) or not declared:
        return
    for key, value in instance.items():
        if key not in declared:
            yield f"{path}{key}"
        else:
            yield from undeclared(value, declared[key], f"{path}{key}.")


def problems(instance: Any, name: str) -> list[str]:
    """Everything wrong with ``instance`` under the vendor schema ``name``; empty when valid."""
    body_schema = schema(name)
    errors = [
        f"{'/'.join(map(str, error.absolute_path)) or '<body>'}: {error.message}"
        for error in Draft202012Validator(body_schema).iter_errors(instance)
    ]
    return errors + [f"{path}: not in the schema" for path in undeclared(instance, body_schema)]


fetch_input = input_fetcher(image_bytes((32, 32), (20, 120, 220)))


def job(vendor: str, model: str, params: Mapping[str, Any], outputs: int = 1) -> GenerationRequest:
    return GenerationRequest(
        job_id="job-schema",
        model=model,
        route=catalog_route(vendor, model),
        prompt="a paper boat on a pond",
        params=params,
        outputs=outputs,
    )


def test_the_schemas_catch_what_a_vendor_would_refuse() -> None:
    """The validation below can fail: wrong enums, types, missing and unknown fields are caught."""
    assert problems({"prompt": "x", "model": "gpt-image-1.5", "n": 2}, "openai_create_image") == []
    assert problems({"prompt": "x", "quality": "ultra"}, "openai_create_image")
    assert problems({"prompt": "x", "n": "2"}, "openai_create_image")
    assert problems({"prompt": "x", "input_fidelty": "high"}, "openai_create_image")
    assert problems({"model": "gpt-image-1.5", "image": [BINARY]}, "openai_create_image_edit")
    legacy = {"image_request": {"prompt": "x", "aspect_ratio": "16:9"}}
    assert problems(legacy, "ideogram_generate")
    assert problems({"prompt": "x", "rendering_speed": "turbo"}, "ideogram_v3_generate")
    form = form_object({"prompt": "x", "num_images": "two"}, {}, schema("ideogram_v3_generate"))
    assert problems(form, "ideogram_v3_generate")


OPENAI_KEY = "sk-schema-openai"

OPENAI_JOBS = [
    pytest.param("gpt-image-1.5", {}, 1, id="gpt-image-defaults"),
    pytest.param(
        "gpt-image-1.5",
        {"quality": "high", "aspect_ratio": "3:2", "output_format": "png", "background": "opaque"},
        2,
        id="gpt-image-every-param",
    ),
    pytest.param(
        "gpt-image-2", {"moderation": "low", "quality": "low", "aspect_ratio": "2:3"}, 1, id="gpt2"
    ),
    pytest.param("dall-e-3", {"aspect_ratio": "3:2", "style": "natural"}, 1, id="dall-e-3"),
    pytest.param("dall-e-2", {"aspect_ratio": "2:3"}, 3, id="dall-e-2"),
    pytest.param(
        "gpt-image-1.5",
        {
            "input_images": ["https://in.test/a.png", "https://in.test/b.png"],
            "input_fidelity": "high",
            "output_format": "jpeg",
        },
        1,
        id="edit-two-inputs",
    ),
    pytest.param(
        "gpt-image-1-mini", {"input_images": ["https://in.test/a.png"]}, 2, id="edit-mini"
    ),
]


@pytest.mark.parametrize(("model", "params", "outputs"), OPENAI_JOBS)
async def test_openai_requests_follow_the_openapi_description(
    model: str, params: Mapping[str, Any], outputs: int
) -> None:
    fake = fake_openai.create_app(api_key=OPENAI_KEY)
    adapter = adapter_on(
        openai.create_adapter,
        fake,
        api_key=OPENAI_KEY,
        options={"dalle3_quality": "hd"},
        fetch_input=fetch_input,
    )
    try:
        result = await adapter.submit(job("openai", model, params, outputs))
    finally:
        await adapter.aclose()

    assert isinstance(result, Finished)
    assert len(result.images) == outputs
    [request] = fake.state.requests
    if request.path == "/v1/images/generations":
        assert problems(request.json, "openai_create_image") == []
    else:
        assert request.path == "/v1/images/edits"
        files: dict[str, int] = {}
        for name, *_ in request.files:
            files[name] = files.get(name, 0) + 1
        body = form_object(request.form, files, schema("openai_create_image_edit"))
        assert body["image"] == [BINARY] * len(params["input_images"])
        assert problems(body, "openai_create_image_edit") == []


IDEOGRAM_JOBS = [
    pytest.param(
        "V_2",
        {
            "aspect_ratio": "16:9",
            "seed": 7,
            "style_type": "Render_3d",
            "magic_prompt_option": "Auto",
            "negative_prompt": "blur",
        },
        2,
        "ideogram_generate",
        id="legacy-generate",
    ),
    pytest.param(
        "V_2A_TURBO",
        {"resolution": "1024x1024", "style_type": "Design"},
        1,
        "ideogram_generate",
        id="legacy-resolution",
    ),
    pytest.param(
        "V_2",
        {"image": "https://in.test/i.png", "mask": "https://in.test/m.png", "seed": 3},
        1,
        "ideogram_edit",
        id="legacy-edit",
    ),
    pytest.param(
        "V_2A",
        {"image": "https://in.test/i.png", "aspect_ratio": "3:2", "magic_prompt_option": "Off"},
        1,
        "ideogram_remix",
        id="legacy-remix",
    ),
    pytest.param(
        "V_3_TURBO",
        {
            "aspect_ratio": "16:9",
            "seed": 42,
            "style_type": "Design",
            "style_preset": "Pop Art",
            "magic_prompt_option": "On",
            "negative_prompt": "blurry",
            "style_reference_images": ["https://in.test/s1.png", "https://in.test/s2.png"],
        },
        2,
        "ideogram_v3_generate",
        id="v3-generate",
    ),
    pytest.param(
        "V_3",
        {
            "character_reference_image": "https://in.test/c.png",
            "rendering_speed": "Quality",
            "resolution": "1024x1024",
        },
        1,
        "ideogram_v3_generate",
        id="v3-character",
    ),
    pytest.param(
        "V_3_QUALITY",
        {"image": "https://in.test/i.png", "mask": "https://in.test/m.png", "style_type": "Auto"},
        1,
        "ideogram_v3_edit",
        id="v3-edit",
    ),
    pytest.param(
        "V_3_BALANCED",
        {"image": "https://in.test/i.png", "aspect_ratio": "4:3", "negative_prompt": "text"},
        1,
        "ideogram_v3_remix",
        id="v3-remix",
    ),
    pytest.param(
        "V_4",
        {"seed": 11, "magic_prompt_option": "Auto", "aspect_ratio": "16:9"},
        1,
        "ideogram_v4_generate",
        id="v4-generate",
    ),
]


@pytest.mark.parametrize(("model", "params", "outputs", "schema_name"), IDEOGRAM_JOBS)
async def test_ideogram_requests_follow_the_openapi_description(
    model: str, params: Mapping[str, Any], outputs: int, schema_name: str
) -> None:
    fake = fake_ideogram.create_app()
    adapter = adapter_on(
        ideogram.create_adapter, fake, api_key=fake_ideogram.API_KEY, fetch_input=fetch_input
    )
    try:
        result = await adapter.submit(job("ideogram", model, params, outputs))
    finally:
        await adapter.aclose()

    assert isinstance(result, Finished)
    assert len(result.images) == outputs
    [request] = fake.state.requests
    if "json" in request:
        body = request["json"]
    else:
        files = {name: len(uploads) for name, uploads in request["files"].items()}
        body = form_object(request["form"], files, schema(schema_name))
    assert problems(body, schema_name) == []
