"""ByteDance Seedream (``seedreamParams``): six models, one image per job.

One published schema serves all of them; the documented per-model limits are rules:
Seedream 3 and Dreamina 3.1 (``seedream-3.1``) are text-to-image only and cap custom sizes at
2048 and 3024 px, Seedream 4.5 only renders ``2K``/``4K`` (or custom sizes from 1024 px).
Seedream 4.x and 5 lite take up to 14 reference images (BytePlus Ark limit, same as the schema);
Seedream 5 Pro takes at most 10 (its Ark model documents the lower limit).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import ConfigDict, Field

from imagegate.catalog.fields import Uri
from imagegate.catalog.inputs import FAL_SIZES, fal, replicate, same
from imagegate.catalog.params import Params
from imagegate.catalog.pricing import usd
from imagegate.catalog.rules import max_items, one_of, requires, within
from imagegate.catalog.spec import Capabilities, ModelSpec, Pricing
from imagegate.types import Route, RouteInputs

__all__ = ["SPECS", "SeedreamParams"]

SEEDREAM_FAL = fal(
    {
        **same("seed"),
        "image_input": "image_urls",
        "size": "image_size",
        "enhance_prompt": "enhance_prompt",
    },
    {"image_size": "seedream_size"},
    sizes=FAL_SIZES,
    edit="image_input",
)
SEEDREAM_3_REPLICATE = replicate(
    same("aspect_ratio", "size", "width", "height", "guidance_scale", "seed")
)
DREAMINA_REPLICATE = replicate(
    same("aspect_ratio", "resolution", "use_pre_llm", "width", "height", "seed")
)
_SEEDREAM_4 = same(
    "aspect_ratio", "size", "width", "height", "image_input", "enhance_prompt", "seed"
)
SEEDREAM_4_REPLICATE = replicate(_SEEDREAM_4, count="max_images")
SEEDREAM_5_REPLICATE = replicate(
    {**_SEEDREAM_4, **same("output_format")}, {"output_format": "jpeg"}, count="max_images"
)


KEY = "seedreamParams"
_SIDES = ("width", "height")
_ARK_SIZE = (
    r"\s*((?i:1K|1\.5K|2K|3K|4K)|regular|big|small|custom|\d+\s*[x×*]\s*\d+)\s*",
    "a tier (1K, 1.5K, 2K, 3K, 4K), regular, big, small, custom or WxH pixels",
)
ARK = RouteInputs(patterns={"size": _ARK_SIZE, "resolution": _ARK_SIZE})
"""What Ark's ``size`` is built from: ``seedreamParams.size``/``resolution`` are free text in
Apiframe's schema, and other text would not reach Ark (such a job runs on Replicate or fal)."""


class SeedreamParams(Params):
    model_config = ConfigDict(title=KEY)

    aspect_ratio: str | None = None
    size: str | None = None
    resolution: str | None = None
    width: int | None = Field(default=None, ge=512, le=4096)
    height: int | None = Field(default=None, ge=512, le=4096)
    guidance_scale: float | None = Field(default=None, ge=1, le=10)
    seed: int | None = None
    output_format: Literal["jpg", "png"] | None = None
    enhance_prompt: bool | None = None
    use_pre_llm: bool | None = None
    image_input: list[Uri] | None = Field(default=None, max_length=14)


_EDITING = Capabilities(image_input=True, editing=True, max_input_images=14, max_resolution="4K")

_SPECS = (
    ModelSpec(
        id="seedream-3",
        label="Seedream 3",
        family="seedream",
        params_key=KEY,
        params=SeedreamParams,
        description="ByteDance Seedream 3.0: text-to-image with native 2K output.",
        pricing=Pricing({"default": 3}, source="Apiframe docs-v2: 3 credits"),
        capabilities=Capabilities(max_resolution="2K"),
        routes=(
            Route("ark", "seedream-3-0-t2i-250415", ARK),
            Route("replicate", "bytedance/seedream-3", SEEDREAM_3_REPLICATE),
        ),
        rules=(
            max_items(KEY, "image_input", 0, "seedream-3"),
            within(KEY, _SIDES, 512, 2048, "seedream-3"),
        ),
    ),
    ModelSpec(
        id="seedream-3.1",
        label="Seedream 3.1",
        family="seedream",
        params_key=KEY,
        params=SeedreamParams,
        description="ByteDance Dreamina 3.1: 4 MP cinematic text-to-image with prompt expansion.",
        pricing=Pricing({"default": 3}, source="Apiframe docs-v2: 3 credits"),
        capabilities=Capabilities(max_resolution="4MP"),
        routes=(Route("replicate", "bytedance/dreamina-3.1", DREAMINA_REPLICATE),),
        rules=(
            max_items(KEY, "image_input", 0, "seedream-3.1"),
            within(KEY, _SIDES, 512, 3024, "seedream-3.1"),
        ),
    ),
    ModelSpec(
        id="seedream-4",
        label="Seedream 4",
        family="seedream",
        params_key=KEY,
        params=SeedreamParams,
        description="ByteDance Seedream 4.0: generation and multi-reference editing up to 4K.",
        pricing=Pricing(
            {"default": usd("0.03")},
            source="BytePlus ModelArk list price US$0.03/image [unverified]",
        ),
        capabilities=_EDITING,
        routes=(
            Route("ark", "seedream-4-0-250828", ARK),
            Route("replicate", "bytedance/seedream-4", SEEDREAM_4_REPLICATE),
            Route("fal", "fal-ai/bytedance/seedream/v4/text-to-image", SEEDREAM_FAL),
        ),
    ),
    ModelSpec(
        id="seedream-4.5",
        label="Seedream 4.5",
        family="seedream",
        params_key=KEY,
        params=SeedreamParams,
        description="ByteDance Seedream 4.5: 2K/4K generation and editing with 14 references.",
        pricing=Pricing({"default": 4}, source="Apiframe docs-v2: 4 credits"),
        capabilities=_EDITING,
        routes=(
            Route("ark", "seedream-4-5-251128", ARK),
            Route("replicate", "bytedance/seedream-4.5", SEEDREAM_4_REPLICATE),
            Route("fal", "fal-ai/bytedance/seedream/v4.5/text-to-image", SEEDREAM_FAL),
        ),
        rules=(
            one_of(KEY, "size", ("2K", "4K", "custom"), "seedream-4.5"),
            within(KEY, _SIDES, 1024, 4096, "seedream-4.5"),
        ),
    ),
    ModelSpec(
        id="seedream-5-lite",
        label="Seedream 5 Lite",
        family="seedream",
        params_key=KEY,
        params=SeedreamParams,
        description="ByteDance Seedream 5.0 lite: fast high-resolution generation and editing.",
        pricing=Pricing(
            {"default": usd("0.035")},
            source="BytePlus ModelArk list price US$0.035/image, rounded up [unverified]",
        ),
        capabilities=_EDITING,
        routes=(
            Route("ark", "seedream-5-0-lite-260128", ARK),
            Route("replicate", "bytedance/seedream-5-lite", SEEDREAM_5_REPLICATE),
            Route("fal", "bytedance/seedream/v5/lite/text-to-image", SEEDREAM_FAL),
        ),
    ),
    ModelSpec(
        id="seedream-5-pro",
        label="Seedream 5 Pro",
        family="seedream",
        params_key=KEY,
        params=SeedreamParams,
        description="ByteDance Seedream 5.0 Pro: high-resolution generation and 10-image editing.",
        pricing=Pricing(
            {"default": 6},
            source="no published list price found; provisional 6 credits (US$0.06), above "
            "Seedream 4.5 and 5 lite [unverified: set an operator override]",
        ),
        capabilities=Capabilities(image_input=True, editing=True, max_input_images=10),
        routes=(
            Route("ark", "dola-seedream-5-0-pro-260628", ARK),
            Route("replicate", "bytedance/seedream-5-pro", SEEDREAM_5_REPLICATE),
            Route("fal", "bytedance/seedream/v5/pro/text-to-image", SEEDREAM_FAL),
        ),
        rules=(max_items(KEY, "image_input", 10, "seedream-5-pro"),),
    ),
)
_SIDES_TOGETHER = (requires(KEY, "width", "height"), requires(KEY, "height", "width"))
"""Every route sends ``width`` and ``height`` as one size: one without the other is refused."""
SPECS = tuple(replace(spec, rules=(*_SIDES_TOGETHER, *spec.rules)) for spec in _SPECS)
