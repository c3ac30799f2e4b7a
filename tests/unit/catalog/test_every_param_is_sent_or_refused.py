"""Every param a model accepts reaches the vendor of each route that takes the job, or is refused.

For every model × route × param of the model's params object, and for sample values of each
param (every enum value, both booleans, an in-range number, an image URL, the route's own value
table for free text), the walk asks what happens to a job carrying it:

- the catalog refuses it (a 400 at submit): fine;
- the route refuses it (``RouteInputs.refusals``), so the router passes the route over: fine;
- otherwise the route's adapter must send something different from the same job without it —
  checked on the requests the real adapter makes (URL, headers and body, captured by an
  ``httpx2.MockTransport``). A request that does not change is a param dropped silently.

``KNOWN_DROPS`` lists the (route, param) pairs that still drop a value silently, so the list is
exactly what remains to decide: a new drop fails here, and so does an entry that stopped dropping
(remove it). ``HONOURED_UNSENT`` lists values the upstream honours without being told.
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
OPTIONS: Mapping[str, Mapping[str, Any]] = {"kling": {"access_key": "ak", "secret_key": "sk"}}
_UNCHANGING_HEADERS = frozenset(
    {"authorization", "content-length", "content-type", "user-agent", "idempotency-key"}
)
_V4_TIERS = ("balanced", "turbo", "quality")
HONOURED_UNSENT: Mapping[tuple[str, str], tuple[Any, ...]] = {
    **{
        (f"replicate:ideogram-ai/ideogram-v4-{tier}", "magic_prompt_option"): ("Auto", "On")
        for tier in _V4_TIERS
    },
}
"""(route, param) → values the upstream honours without being sent them (Replicate's Ideogram
4.0 models always run Magic Prompt; ``Off`` is refused by the route)."""


def _drops(*pairs: str) -> frozenset[tuple[str, str]]:
    """``"provider:upstream param"`` pairs as (route, param)."""
    return frozenset((pair.rsplit(" ", 1)[0], pair.rsplit(" ", 1)[1]) for pair in pairs)


KNOWN_DROPS: Mapping[str, frozenset[tuple[str, str]]] = {
    "nano-banana": _drops(
        "gemini:gemini-2.5-flash-image output_format",
        "gemini:gemini-2.5-flash-image resolution",
    ),
    "nano-banana-pro": _drops(
        "fal:fal-ai/nano-banana-pro image_search",
        "gemini:gemini-3-pro-image google_search",
        "gemini:gemini-3-pro-image image_search",
        "gemini:gemini-3-pro-image output_format",
        "replicate:google/nano-banana-pro google_search",
        "replicate:google/nano-banana-pro image_search",
    ),
    "nano-banana-2": _drops(
        "fal:fal-ai/nano-banana-2 image_search",
        "gemini:gemini-3.1-flash-image google_search",
        "gemini:gemini-3.1-flash-image image_search",
        "gemini:gemini-3.1-flash-image output_format",
    ),
    "nano-banana-2-lite": _drops(
        "fal:google/nano-banana-2-lite image_search",
        "gemini:gemini-3.1-flash-lite-image google_search",
        "gemini:gemini-3.1-flash-lite-image image_search",
        "gemini:gemini-3.1-flash-lite-image output_format",
        "replicate:google/nano-banana-2-lite google_search",
        "replicate:google/nano-banana-2-lite image_search",
        "replicate:google/nano-banana-2-lite resolution",
    ),
    "flux-1.1-pro": _drops(
        "bfl:flux-pro-1.1 go_fast",
        "bfl:flux-pro-1.1 guidance",
        "bfl:flux-pro-1.1 height",
        "bfl:flux-pro-1.1 image_prompt_strength",
        "bfl:flux-pro-1.1 output_format",
        "bfl:flux-pro-1.1 output_quality",
        "bfl:flux-pro-1.1 raw",
        "bfl:flux-pro-1.1 resolution",
        "bfl:flux-pro-1.1 steps",
        "bfl:flux-pro-1.1 width",
        "fal:fal-ai/flux-pro/v1.1 aspect_ratio",
        "fal:fal-ai/flux-pro/v1.1 go_fast",
        "fal:fal-ai/flux-pro/v1.1 guidance",
        "fal:fal-ai/flux-pro/v1.1 height",
        "fal:fal-ai/flux-pro/v1.1 image_prompt",
        "fal:fal-ai/flux-pro/v1.1 image_prompt_strength",
        "fal:fal-ai/flux-pro/v1.1 output_quality",
        "fal:fal-ai/flux-pro/v1.1 raw",
        "fal:fal-ai/flux-pro/v1.1 resolution",
        "fal:fal-ai/flux-pro/v1.1 steps",
        "fal:fal-ai/flux-pro/v1.1 width",
        "replicate:black-forest-labs/flux-1.1-pro go_fast",
        "replicate:black-forest-labs/flux-1.1-pro guidance",
        "replicate:black-forest-labs/flux-1.1-pro image_prompt_strength",
        "replicate:black-forest-labs/flux-1.1-pro raw",
        "replicate:black-forest-labs/flux-1.1-pro resolution",
        "replicate:black-forest-labs/flux-1.1-pro steps",
    ),
    "flux-1.1-pro-ultra": _drops(
        "bfl:flux-pro-1.1-ultra go_fast",
        "bfl:flux-pro-1.1-ultra guidance",
        "bfl:flux-pro-1.1-ultra height",
        "bfl:flux-pro-1.1-ultra output_format",
        "bfl:flux-pro-1.1-ultra output_quality",
        "bfl:flux-pro-1.1-ultra resolution",
        "bfl:flux-pro-1.1-ultra steps",
        "bfl:flux-pro-1.1-ultra width",
        "fal:fal-ai/flux-pro/v1.1-ultra go_fast",
        "fal:fal-ai/flux-pro/v1.1-ultra guidance",
        "fal:fal-ai/flux-pro/v1.1-ultra height",
        "fal:fal-ai/flux-pro/v1.1-ultra output_quality",
        "fal:fal-ai/flux-pro/v1.1-ultra resolution",
        "fal:fal-ai/flux-pro/v1.1-ultra steps",
        "fal:fal-ai/flux-pro/v1.1-ultra width",
        "replicate:black-forest-labs/flux-1.1-pro-ultra go_fast",
        "replicate:black-forest-labs/flux-1.1-pro-ultra guidance",
        "replicate:black-forest-labs/flux-1.1-pro-ultra height",
        "replicate:black-forest-labs/flux-1.1-pro-ultra output_quality",
        "replicate:black-forest-labs/flux-1.1-pro-ultra prompt_upsampling",
        "replicate:black-forest-labs/flux-1.1-pro-ultra resolution",
        "replicate:black-forest-labs/flux-1.1-pro-ultra steps",
        "replicate:black-forest-labs/flux-1.1-pro-ultra width",
    ),
    "flux-2-pro": _drops(
        "bfl:flux-2-pro go_fast",
        "bfl:flux-2-pro guidance",
        "bfl:flux-2-pro height",
        "bfl:flux-2-pro image_prompt_strength",
        "bfl:flux-2-pro output_format",
        "bfl:flux-2-pro output_quality",
        "bfl:flux-2-pro prompt_upsampling",
        "bfl:flux-2-pro raw",
        "bfl:flux-2-pro resolution",
        "bfl:flux-2-pro steps",
        "bfl:flux-2-pro width",
        "fal:fal-ai/flux-2-pro aspect_ratio",
        "fal:fal-ai/flux-2-pro go_fast",
        "fal:fal-ai/flux-2-pro height",
        "fal:fal-ai/flux-2-pro image_prompt_strength",
        "fal:fal-ai/flux-2-pro output_quality",
        "fal:fal-ai/flux-2-pro raw",
        "fal:fal-ai/flux-2-pro resolution",
        "fal:fal-ai/flux-2-pro width",
        "replicate:black-forest-labs/flux-2-pro go_fast",
        "replicate:black-forest-labs/flux-2-pro guidance",
        "replicate:black-forest-labs/flux-2-pro image_prompt_strength",
        "replicate:black-forest-labs/flux-2-pro raw",
        "replicate:black-forest-labs/flux-2-pro steps",
    ),
    "flux-2-dev": _drops(
        "fal:fal-ai/flux-2 aspect_ratio",
        "fal:fal-ai/flux-2 go_fast",
        "fal:fal-ai/flux-2 height",
        "fal:fal-ai/flux-2 image_prompt_strength",
        "fal:fal-ai/flux-2 output_quality",
        "fal:fal-ai/flux-2 raw",
        "fal:fal-ai/flux-2 resolution",
        "fal:fal-ai/flux-2 width",
        "replicate:black-forest-labs/flux-2-dev guidance",
        "replicate:black-forest-labs/flux-2-dev image_prompt_strength",
        "replicate:black-forest-labs/flux-2-dev prompt_upsampling",
        "replicate:black-forest-labs/flux-2-dev raw",
        "replicate:black-forest-labs/flux-2-dev resolution",
        "replicate:black-forest-labs/flux-2-dev steps",
    ),
    "flux-2-flex": _drops(
        "bfl:flux-2-flex go_fast",
        "bfl:flux-2-flex height",
        "bfl:flux-2-flex image_prompt_strength",
        "bfl:flux-2-flex output_format",
        "bfl:flux-2-flex output_quality",
        "bfl:flux-2-flex raw",
        "bfl:flux-2-flex resolution",
        "bfl:flux-2-flex width",
        "fal:fal-ai/flux-2-flex aspect_ratio",
        "fal:fal-ai/flux-2-flex go_fast",
        "fal:fal-ai/flux-2-flex height",
        "fal:fal-ai/flux-2-flex image_prompt_strength",
        "fal:fal-ai/flux-2-flex output_quality",
        "fal:fal-ai/flux-2-flex raw",
        "fal:fal-ai/flux-2-flex resolution",
        "fal:fal-ai/flux-2-flex width",
        "replicate:black-forest-labs/flux-2-flex go_fast",
        "replicate:black-forest-labs/flux-2-flex image_prompt_strength",
        "replicate:black-forest-labs/flux-2-flex raw",
    ),
    "flux-2-max": _drops(
        "bfl:flux-2-max go_fast",
        "bfl:flux-2-max guidance",
        "bfl:flux-2-max height",
        "bfl:flux-2-max image_prompt_strength",
        "bfl:flux-2-max output_format",
        "bfl:flux-2-max output_quality",
        "bfl:flux-2-max prompt_upsampling",
        "bfl:flux-2-max raw",
        "bfl:flux-2-max resolution",
        "bfl:flux-2-max steps",
        "bfl:flux-2-max width",
        "fal:fal-ai/flux-2-max aspect_ratio",
        "fal:fal-ai/flux-2-max go_fast",
        "fal:fal-ai/flux-2-max height",
        "fal:fal-ai/flux-2-max image_prompt_strength",
        "fal:fal-ai/flux-2-max output_quality",
        "fal:fal-ai/flux-2-max raw",
        "fal:fal-ai/flux-2-max resolution",
        "fal:fal-ai/flux-2-max width",
        "replicate:black-forest-labs/flux-2-max go_fast",
        "replicate:black-forest-labs/flux-2-max guidance",
        "replicate:black-forest-labs/flux-2-max image_prompt_strength",
        "replicate:black-forest-labs/flux-2-max prompt_upsampling",
        "replicate:black-forest-labs/flux-2-max raw",
        "replicate:black-forest-labs/flux-2-max steps",
    ),
    "seedream-3": _drops(
        "ark:seedream-3-0-t2i-250415 height",
        "ark:seedream-3-0-t2i-250415 resolution",
        "ark:seedream-3-0-t2i-250415 width",
        "replicate:bytedance/seedream-3 enhance_prompt",
        "replicate:bytedance/seedream-3 output_format",
        "replicate:bytedance/seedream-3 resolution",
        "replicate:bytedance/seedream-3 use_pre_llm",
    ),
    "seedream-3.1": _drops(
        "replicate:bytedance/dreamina-3.1 enhance_prompt",
        "replicate:bytedance/dreamina-3.1 guidance_scale",
        "replicate:bytedance/dreamina-3.1 output_format",
        "replicate:bytedance/dreamina-3.1 size",
    ),
    "seedream-4": _drops(
        "ark:seedream-4-0-250828 height",
        "ark:seedream-4-0-250828 resolution",
        "ark:seedream-4-0-250828 width",
        "fal:fal-ai/bytedance/seedream/v4/text-to-image aspect_ratio",
        "fal:fal-ai/bytedance/seedream/v4/text-to-image guidance_scale",
        "fal:fal-ai/bytedance/seedream/v4/text-to-image height",
        "fal:fal-ai/bytedance/seedream/v4/text-to-image output_format",
        "fal:fal-ai/bytedance/seedream/v4/text-to-image resolution",
        "fal:fal-ai/bytedance/seedream/v4/text-to-image use_pre_llm",
        "fal:fal-ai/bytedance/seedream/v4/text-to-image width",
        "replicate:bytedance/seedream-4 guidance_scale",
        "replicate:bytedance/seedream-4 output_format",
        "replicate:bytedance/seedream-4 resolution",
        "replicate:bytedance/seedream-4 use_pre_llm",
    ),
    "seedream-4.5": _drops(
        "ark:seedream-4-5-251128 height",
        "ark:seedream-4-5-251128 resolution",
        "ark:seedream-4-5-251128 width",
        "fal:fal-ai/bytedance/seedream/v4.5/text-to-image aspect_ratio",
        "fal:fal-ai/bytedance/seedream/v4.5/text-to-image guidance_scale",
        "fal:fal-ai/bytedance/seedream/v4.5/text-to-image height",
        "fal:fal-ai/bytedance/seedream/v4.5/text-to-image output_format",
        "fal:fal-ai/bytedance/seedream/v4.5/text-to-image resolution",
        "fal:fal-ai/bytedance/seedream/v4.5/text-to-image use_pre_llm",
        "fal:fal-ai/bytedance/seedream/v4.5/text-to-image width",
        "replicate:bytedance/seedream-4.5 guidance_scale",
        "replicate:bytedance/seedream-4.5 output_format",
        "replicate:bytedance/seedream-4.5 resolution",
        "replicate:bytedance/seedream-4.5 use_pre_llm",
    ),
    "seedream-5-lite": _drops(
        "ark:seedream-5-0-lite-260128 height",
        "ark:seedream-5-0-lite-260128 resolution",
        "ark:seedream-5-0-lite-260128 width",
        "fal:bytedance/seedream/v5/lite/text-to-image aspect_ratio",
        "fal:bytedance/seedream/v5/lite/text-to-image guidance_scale",
        "fal:bytedance/seedream/v5/lite/text-to-image height",
        "fal:bytedance/seedream/v5/lite/text-to-image output_format",
        "fal:bytedance/seedream/v5/lite/text-to-image resolution",
        "fal:bytedance/seedream/v5/lite/text-to-image use_pre_llm",
        "fal:bytedance/seedream/v5/lite/text-to-image width",
        "replicate:bytedance/seedream-5-lite guidance_scale",
        "replicate:bytedance/seedream-5-lite resolution",
        "replicate:bytedance/seedream-5-lite use_pre_llm",
    ),
    "seedream-5-pro": _drops(
        "ark:dola-seedream-5-0-pro-260628 height",
        "ark:dola-seedream-5-0-pro-260628 resolution",
        "ark:dola-seedream-5-0-pro-260628 width",
        "fal:bytedance/seedream/v5/pro/text-to-image aspect_ratio",
        "fal:bytedance/seedream/v5/pro/text-to-image guidance_scale",
        "fal:bytedance/seedream/v5/pro/text-to-image height",
        "fal:bytedance/seedream/v5/pro/text-to-image output_format",
        "fal:bytedance/seedream/v5/pro/text-to-image resolution",
        "fal:bytedance/seedream/v5/pro/text-to-image use_pre_llm",
        "fal:bytedance/seedream/v5/pro/text-to-image width",
        "replicate:bytedance/seedream-5-pro guidance_scale",
        "replicate:bytedance/seedream-5-pro resolution",
        "replicate:bytedance/seedream-5-pro use_pre_llm",
    ),
    "stable-diffusion-3.5-large-turbo": _drops(
        "replicate:stability-ai/stable-diffusion-3.5-large-turbo output_quality",
        "replicate:stability-ai/stable-diffusion-3.5-large-turbo steps",
    ),
    "imagen-3": _drops(
        "gemini:gemini-2.5-flash-image output_format",
    ),
    "imagen-3-fast": _drops(
        "gemini:gemini-2.5-flash-image output_format",
    ),
    "imagen-4": _drops(
        "gemini:gemini-2.5-flash-image image_size",
        "gemini:gemini-2.5-flash-image output_format",
    ),
    "imagen-4-ultra": _drops(
        "gemini:gemini-2.5-flash-image image_size",
        "gemini:gemini-2.5-flash-image output_format",
    ),
    "imagen-4-fast": _drops(
        "gemini:gemini-2.5-flash-image output_format",
    ),
    "dall-e-3": _drops(
        "openai:gpt-image-1.5 style",
    ),
    "dall-e-2": _drops(
        "openai:dall-e-2 aspect_ratio",
        "openai:dall-e-2 style",
        "openai:gpt-image-1.5 style",
    ),
    "gpt-image-1.5": _drops(
        "openai:gpt-image-1.5 input_fidelity",
    ),
    "gpt-image-2": _drops(
        "fal:openai/gpt-image-2 moderation",
    ),
    "kling-image": _drops(
        "fal:fal-ai/kling-image/v3/text-to-image model_name",
        "kling:kling-image image_fidelity",
    ),
    "qwen-image": _drops(
        "dashscope:qwen-image acceleration",
        "dashscope:qwen-image guidance_scale",
        "dashscope:qwen-image num_images",
        "dashscope:qwen-image num_inference_steps",
        "dashscope:qwen-image output_format",
        "dashscope:qwen-image strength",
        "dashscope:qwen-image task_type",
        "fal:fal-ai/qwen-image task_type",
        "replicate:qwen/qwen-image task_type",
    ),
    "qwen-image-2": _drops(
        "fal:fal-ai/qwen-image-2/text-to-image aspect_ratio",
    ),
    "qwen-image-2-pro": _drops(
        "fal:fal-ai/qwen-image-2/pro/text-to-image aspect_ratio",
    ),
    "wan-image-2.7": _drops(
        "fal:fal-ai/wan/v2.7/text-to-image aspect_ratio",
        "fal:fal-ai/wan/v2.7/text-to-image thinking_mode",
    ),
    "wan-image-2.7-pro": _drops(
        "fal:fal-ai/wan/v2.7/pro/text-to-image aspect_ratio",
        "fal:fal-ai/wan/v2.7/pro/text-to-image thinking_mode",
    ),
    "reve-create": _drops(
        "fal:fal-ai/reve/text-to-image version",
        "reve:reve-create seed",
    ),
}
"""Model id → the (route, param) pairs that still drop a value silently (see the docstring)."""


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


async def _walk(spec: ModelSpec) -> tuple[set[tuple[str, str]], int]:
    """The (route, param) pairs that drop a value, and how many values reached a vendor."""
    properties = spec.params.model_json_schema()["properties"]
    required = [name for name, field in spec.params.model_fields.items() if field.is_required()]
    drops: set[tuple[str, str]] = set()
    checked = 0
    for route in _routes(spec):
        base = {name: _values(spec, route, name, properties[name])[0] for name in required}
        for name, schema in properties.items():
            if name in required:
                continue
            without = _accepted(spec, route, {**base, **COMPANIONS.get(name, {})})
            if without is None:
                continue
            for value in _values(spec, route, name, schema):
                honoured = HONOURED_UNSENT.get((str(route), name), ())
                stored = _accepted(spec, route, {**base, **COMPANIONS.get(name, {}), name: value})
                if stored is None or stored == without or value in honoured:
                    continue  # refused, the default anyway, or honoured without being sent
                checked += 1
                if await _sent(spec, route, stored) == await _sent(spec, route, without):
                    drops.add((str(route), name))
    return drops, checked


@pytest.mark.parametrize("spec", list(CATALOG), ids=lambda spec: spec.id)
async def test_every_accepted_param_is_sent_or_refused_on_every_route(spec: ModelSpec) -> None:
    drops, checked = await _walk(spec)
    assert checked or not spec.params.model_fields, f"{spec.id}: no param value was walked"
    known = KNOWN_DROPS.get(spec.id, frozenset())
    assert sorted(drops - known) == [], "accepted, routed here and silently not sent"
    assert sorted(known - drops) == [], "sent or refused now: remove from KNOWN_DROPS"


def test_the_known_drops_name_only_catalog_models() -> None:
    assert set(KNOWN_DROPS) <= {spec.id for spec in CATALOG}
