"""Every param a model accepts reaches the vendor of each route that takes the job, or is refused.

For every model × route × param of the model's params object, and for sample values of each
param (every enum value, both booleans, an in-range number, an image URL, the route's own value
table for free text), alone and again beside each input image (an input often selects another
request: an edit, a remix), the walk asks what happens to a job carrying it:

- the catalog refuses it (a 400 at submit): fine;
- the route refuses it (``RouteInputs.refusals``), so the router passes the route over: fine;
- otherwise the route's adapter must send something different from the same job without it —
  checked on the requests the real adapter makes (URL, headers and body, captured by an
  ``httpx2.MockTransport``). A request that does not change is a param dropped silently.

``HONOURED_UNSENT`` lists the values an upstream honours without being told (it always answers
PNG, say). What the walk does not cover: a value that changes nothing while another value of the
same param does (value tables are walked against vendor enums in
``test_route_tables_match_vendor_enums.py``), and pairs of plain params dropped only together.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import httpx2
import pytest
from pydantic import ValidationError

from imagegate.catalog import ModelSpec, build_catalog
from imagegate.providers import registry
from imagegate.providers.port import GenerationRequest, ProviderContext
from imagegate.settings import ProviderSettings
from imagegate.types import FetchedInput, Route
from tests.images import image_bytes

CATALOG = build_catalog()
PROMPT = "a fox in the snow"
FREE_TEXT: Mapping[str, tuple[str, ...]] = {
    "aspect_ratio": ("16:9", "3:2"),
    "resolution": ("2K", "1K", "1MP", "1024x1024"),
    "size": ("2K", "2048x2048"),
    "style_type": ("Realistic", "Design"),
    "style_preset": ("Pop Art",),
    "negative_prompt": ("blurry hands",),
    "version": ("latest",),
}
"""Sample values for free-text params whose route has no value table."""
COMPANIONS: Mapping[str, Mapping[str, Any]] = {"mask": {"image": "https://in.example/image.png"}}
"""Params a param needs beside it to be accepted at all (a mask inpaints an image)."""
TOGETHER: Mapping[str, Mapping[str, Any]] = {"width": {"height": 1024}, "height": {"width": 1024}}
"""Params sent as a pair: walked together, against the job with neither."""
OPTIONS: Mapping[str, Mapping[str, Any]] = {"kling": {"access_key": "ak", "secret_key": "sk"}}
_UNCHANGING_HEADERS = frozenset(
    {"authorization", "content-length", "content-type", "user-agent", "idempotency-key"}
)
_V4_TIERS = ("balanced", "turbo", "quality")
_BFL = ("flux-pro-1.1", "flux-pro-1.1-ultra", "flux-2-pro", "flux-2-flex", "flux-2-max")
HONOURED_UNSENT: Mapping[tuple[str, str], tuple[Any, ...]] = {
    **{
        (f"replicate:ideogram-ai/ideogram-v4-{tier}", "magic_prompt_option"): ("Auto", "On")
        for tier in _V4_TIERS
    },
    ("gemini:gemini-2.5-flash-image", "resolution"): ("1K",),
    **{
        (f"gemini:{upstream}", "output_format"): ("png",)
        for upstream in (
            "gemini-2.5-flash-image",
            "gemini-3-pro-image",
            "gemini-3.1-flash-image",
            "gemini-3.1-flash-lite-image",
        )
    },
    ("dashscope:qwen-image", "task_type"): ("text-to-image", "image-to-image", "image-edit"),
    ("dashscope:qwen-image", "output_format"): ("png",),
    **{(f"bfl:{endpoint}", "output_format"): ("jpg",) for endpoint in _BFL},
    **{(f"bfl:{endpoint}", "resolution"): ("match_input_image",) for endpoint in _BFL[2:]},
    **{
        (f"gemini:{upstream}", search): (False,)
        for upstream in (
            "gemini-3-pro-image",
            "gemini-3.1-flash-image",
            "gemini-3.1-flash-lite-image",
        )
        for search in ("google_search", "image_search")
    },
}
"""(route, param) → values the upstream honours without being sent them: Replicate's Ideogram
4.0 models always run Magic Prompt (``Off`` is refused by the route), Gemini 2.5 Flash Image
draws 1K only (the model's rules refuse other sizes), Google's API and DashScope's qwen-image
answer PNG (other formats are refused by the route), a qwen-image job is a text-to-image
task without an input image and an edit with one, BFL answers JPEG and sizes FLUX.2 from the
input image unless told otherwise, and Gemini grounds in search results only when asked."""


COUNTS = frozenset({"n", "num_images", "number_of_images"})
"""The number of images is the job's output count, not a param a route sends: a route's count
input or one-image limit carries it (``test_all_models`` runs several images through each)."""


def _values(spec: ModelSpec, route: Route, name: str, schema: Mapping[str, Any]) -> list[Any]:
    """Sample values of ``name`` a client may send for ``spec``."""
    options = schema.get("anyOf", [schema])
    prop = next((option for option in options if option.get("type") != "null"), schema)
    if "enum" in prop:
        return list(prop["enum"])
    kind = prop.get("type")
    if kind == "array":
        return [[f"https://in.example/{name}-1.png"]]
    if prop.get("format") == "uri":
        return [f"https://in.example/{name}.png"]
    if kind == "boolean":
        return [True, False]
    if kind in ("integer", "number"):
        if name in ("n", "num_images", "number_of_images"):
            return [2]
        low, high = prop.get("minimum"), prop.get("maximum")
        if low is None and high is None:
            return [7]
        low = low if low is not None else 0
        high = high if high is not None else low + 100
        value = low + (high - low) / 3
        return [max(1, round(value))] if kind == "integer" else [value]
    if route.inputs is not None and name in route.inputs.values:
        return [value for value in route.inputs.values[name] if value != "None"]
    return list(FREE_TEXT.get(name, ("some text",)))


async def _fetch(url: str) -> FetchedInput:
    return FetchedInput(
        data=image_bytes((16, 16)) + url.encode(), content_type="image/png", url=url
    )


def _seen(request: httpx2.Request) -> tuple[str, str, str, tuple[tuple[str, str], ...]]:
    """What the vendor would see, with the parts that differ between identical calls evened."""
    content_type = request.headers.get("content-type", "")
    body = request.content.decode("latin-1")
    if "json" in content_type:
        body = json.dumps(json.loads(body), sort_keys=True)
    elif boundary := re.search(r"boundary=([^;]+)", content_type):
        body = body.replace(boundary[1], "BOUNDARY")
    headers = tuple(
        sorted((k, v) for k, v in request.headers.items() if k.lower() not in _UNCHANGING_HEADERS)
    )
    return request.method, str(request.url), body, headers


async def _sent(spec: ModelSpec, route: Route, params: dict[str, Any]) -> list[Any]:
    """Every request ``route``'s adapter makes for a job with ``params`` (answered 400)."""
    seen: list[Any] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        seen.append(_seen(request))
        return httpx2.Response(400, json={"error": "refused", "message": "refused"})

    context = ProviderContext(fetch_input=_fetch, transport=httpx2.MockTransport(answer))
    settings = ProviderSettings(
        api_key="key",
        base_url="http://upstream.test",
        options=dict(OPTIONS.get(route.provider, {})),
    )
    adapter = registry.create_adapter(route.provider, settings, context)
    validated = spec.params.model_validate(params)
    request = GenerationRequest(
        job_id="job-1",
        model=spec.id,
        route=route,
        prompt=PROMPT,
        params=params,
        outputs=spec.outputs(validated),
    )
    try:
        with contextlib.suppress(Exception):  # every adapter fails on the 400: only requests count
            await adapter.submit(request)
    finally:
        await adapter.aclose()
    assert seen, f"{route} made no request for {spec.id}"
    return seen


def _accepted(spec: ModelSpec, route: Route, raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """``raw`` as stored when the catalog accepts it and ``route`` may be chosen for it."""
    try:
        params = spec.params.model_validate(dict(raw))
    except ValidationError:
        return None
    if spec.check(params, PROMPT):
        return None
    stored = params.model_dump(mode="json", exclude_none=True)
    if route.inputs is not None and route.inputs.refusals(stored, spec.outputs(params)):
        return None
    return stored


def _routes(spec: ModelSpec) -> Iterator[Route]:
    for route in (*spec.routes, *spec.substitutes):
        if route.provider != "sandbox":
            yield route


INPUTS = ("image", "image_url", "image_prompt", "input_images", "image_input")
"""Input-image params: each selects another request on some vendors (an edit, a remix), so every
other param is walked again beside each of them, and beside an inpainting ``image`` + ``mask``."""


def _contexts(spec: ModelSpec, route: Route, properties: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The params every walk of ``route`` starts from: the required ones, then each input."""
    required = [name for name, field in spec.params.model_fields.items() if field.is_required()]
    base = {name: _values(spec, route, name, properties[name])[0] for name in required}
    inputs = [name for name in INPUTS if name in properties]
    contexts = [base]
    contexts += [{**base, name: _values(spec, route, name, properties[name])[0]} for name in inputs]
    if "mask" in properties:
        contexts.append({**base, "mask": "https://in.example/mask.png", **COMPANIONS["mask"]})
    return contexts


async def _walk(spec: ModelSpec) -> tuple[set[tuple[str, str, str]], int]:
    """The (route, param, value) triples whose requests equal the job's without the param, and
    how many values were walked (a value at the param's default is not walked)."""
    properties = spec.params.model_json_schema()["properties"]
    drops: set[tuple[str, str, str]] = set()
    checked = 0
    for route in _routes(spec):
        for base in _contexts(spec, route, properties):
            for name, schema in properties.items():
                if name in base or name in COUNTS:
                    continue
                without = _accepted(spec, route, {**base, **COMPANIONS.get(name, {})})
                if without is None:
                    continue
                honoured = HONOURED_UNSENT.get((str(route), name), ())
                unsent = await _sent(spec, route, without)
                for value in _values(spec, route, name, schema):
                    both = {**COMPANIONS.get(name, {}), **TOGETHER.get(name, {}), name: value}
                    stored = _accepted(spec, route, {**base, **both})
                    if stored is None or stored == without or value in honoured:
                        continue  # refused, the default anyway, or honoured without being sent
                    checked += 1
                    if await _sent(spec, route, stored) == unsent:
                        drops.add((str(route), name, str(value)))
    return drops, checked


@pytest.mark.parametrize("spec", list(CATALOG), ids=lambda spec: spec.id)
async def test_every_accepted_param_is_sent_or_refused_on_every_route(spec: ModelSpec) -> None:
    drops, checked = await _walk(spec)
    assert checked or not spec.params.model_fields, f"{spec.id}: no param value was walked"
    assert sorted(drops) == [], "accepted, routed here and silently not sent"
