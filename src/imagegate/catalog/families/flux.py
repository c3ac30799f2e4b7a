"""Black Forest Labs FLUX (``fluxParams``): six models, one image per job.

Apiframe publishes ``fluxParams`` in two shapes: for FLUX.2 [pro]/[flex]/[max] ``resolution`` is an
enum of output sizes (``0.5MP`` … ``4MP``, ``match_input_image``), for the others a free string.
Both shapes keep the title ``fluxParams``. The number of reference images differs per model:
the FLUX 1.1 models take one ``image_prompt`` and no ``input_images``,
FLUX.2 [dev] at most 5, [pro] and [max] 8, [flex] 10. BFL bills FLUX.2 by output megapixels, so
those models are priced by ``resolution`` (``match_input_image`` is charged as the 4 MP maximum).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Literal

from pydantic import ConfigDict, Field

from imagegate.catalog.fields import AspectRatio, Uri
from imagegate.catalog.inputs import FAL_SIZES, fal, replicate, same
from imagegate.catalog.params import Params
from imagegate.catalog.pricing import by_field, usd
from imagegate.catalog.rules import max_items, requires, unsupported, within
from imagegate.catalog.spec import Capabilities, ModelSpec, Pricing, RuleCheck
from imagegate.types import Route, RouteInputs

__all__ = ["SPECS", "Flux2Params", "FluxParams"]

_FAL_CONVERT = {"output_format": "jpeg", "safety_tolerance": "text"}
FLUX_11_ULTRA_FAL = fal(
    {
        **same("aspect_ratio", "raw", "seed", "safety_tolerance", "output_format"),
        **same("image_prompt_strength"),
        "image_prompt": "image_url",
        "prompt_upsampling": "enhance_prompt",
    },
    _FAL_CONVERT,
    values={"aspect_ratio": ("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21")},
)
FLUX_11_FAL = fal(
    {**same("seed", "safety_tolerance", "output_format"), "prompt_upsampling": "enhance_prompt"},
    _FAL_CONVERT,
    sizes=FAL_SIZES,
)
FLUX_2_FAL = fal(
    {
        **same("seed", "safety_tolerance", "output_format"),
        "input_images": "image_urls",
        "guidance": "guidance_scale",
        "steps": "num_inference_steps",
        "prompt_upsampling": "enable_prompt_expansion",
    },
    _FAL_CONVERT,
    sizes=FAL_SIZES,
    edit="input_images",
)
_REPLICATE_CONVERT = {"output_format": "jpg", "resolution": "megapixels"}
FLUX_11_ULTRA_REPLICATE = replicate(
    same(
        "aspect_ratio", "raw", "image_prompt", "image_prompt_strength", "output_format", "seed",
        "safety_tolerance",
    ),
    {"output_format": "jpg"},
    values={
        "aspect_ratio": (
            "21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16", "9:21",
        ),
    },
)  # fmt: skip
_REPLICATE_ONLY = ("go_fast", "output_quality")
FLUX_ULTRA_BFL = RouteInputs(
    ratios=("21:9", "9:21"),
    refuses=(*_REPLICATE_ONLY, "guidance", "steps", "resolution", "width", "height"),
)
"""BFL's ``FluxUltraInput``: ``aspect_ratio`` any ratio "between 21:9 and 9:21", ``raw``,
``image_prompt`` and its strength, ``prompt_upsampling``, ``output_format``, ``seed``; no size."""
FLUX_11_BFL = RouteInputs(
    refuses=(*_REPLICATE_ONLY, "guidance", "steps", "raw", "image_prompt_strength", "resolution")
)
"""BFL's ``FluxPro11Inputs``: ``width``/``height`` (from ``aspect_ratio`` when not given),
``image_prompt``, ``prompt_upsampling``, ``output_format``, ``seed``."""
FLUX_2_BFL = RouteInputs(
    refuses=(
        *_REPLICATE_ONLY, "guidance", "steps", "prompt_upsampling", "raw", "image_prompt_strength",
    )
)  # fmt: skip
"""BFL's ``Flux2Inputs`` ([pro], [max]): ``width``/``height`` (from ``aspect_ratio`` and
``resolution`` when not given), up to eight ``input_image*``, ``output_format``, ``seed``."""
FLUX_2_FLEX_BFL = RouteInputs(refuses=(*_REPLICATE_ONLY, "raw", "image_prompt_strength"))
"""BFL's ``Flux2FlexInputs``: ``Flux2Inputs`` plus ``guidance``, ``steps``,
``prompt_upsampling``."""
FLUX_11_REPLICATE = replicate(
    same(
        "aspect_ratio", "width", "height", "image_prompt", "prompt_upsampling", "output_format",
        "output_quality", "seed", "safety_tolerance",
    ),
    {"output_format": "jpg"},
)  # fmt: skip
_FLUX_2 = same(
    "aspect_ratio", "width", "height", "input_images", "output_format", "output_quality",
    "seed", "safety_tolerance",
)  # fmt: skip
FLUX_2_PRO_REPLICATE = replicate(
    {**_FLUX_2, **same("resolution", "prompt_upsampling")}, _REPLICATE_CONVERT
)
FLUX_2_FLEX_REPLICATE = replicate(
    {**_FLUX_2, **same("resolution", "prompt_upsampling", "steps", "guidance")},
    _REPLICATE_CONVERT,
)
FLUX_2_MAX_REPLICATE = replicate({**_FLUX_2, **same("resolution")}, _REPLICATE_CONVERT)
FLUX_2_DEV_REPLICATE = replicate({**_FLUX_2, **same("go_fast")}, {"output_format": "jpg"})


KEY = "fluxParams"


class _FluxFields(Params):
    """The fields both shapes of ``fluxParams`` share (all but ``resolution``)."""

    model_config = ConfigDict(title=KEY)

    aspect_ratio: AspectRatio | None = None
    width: int | None = Field(default=None, ge=256, le=2048)
    height: int | None = Field(default=None, ge=256, le=2048)
    output_format: Literal["jpg", "png", "webp"] | None = None
    output_quality: int | None = Field(default=None, ge=0, le=100)
    seed: int | None = None
    guidance: float | None = Field(default=None, ge=1.5, le=10)
    steps: int | None = Field(default=None, ge=1, le=50)
    prompt_upsampling: bool | None = None
    raw: bool | None = None
    image_prompt: Uri | None = None
    image_prompt_strength: float | None = Field(default=None, ge=0, le=1)
    input_images: list[Uri] | None = Field(default=None, max_length=10)
    go_fast: bool | None = None


class FluxParams(_FluxFields):
    """``fluxParams`` for FLUX 1.1 [pro], 1.1 [pro] ultra and FLUX.2 [dev]."""

    resolution: str | None = None


class Flux2Params(_FluxFields):
    """``fluxParams`` for FLUX.2 [pro], [flex] and [max]: ``resolution`` is an enum."""

    resolution: Literal["0.5MP", "1MP", "2MP", "4MP", "match_input_image"] | None = None


def _references(model_id: str, limit: int) -> tuple[RuleCheck, ...]:
    if limit == 0:
        return (max_items(KEY, "input_images", 0, model_id),)
    return (
        max_items(KEY, "input_images", limit, model_id),
        unsupported(KEY, "image_prompt", model_id),
    )


def _per_megapixel(first: str, extra: str) -> dict[str, int]:
    """BFL's FLUX.2 price: ``first`` US$ for the first output megapixel, ``extra`` for each more."""

    def cost(megapixels: Decimal) -> int:
        more = max(megapixels - 1, Decimal(0))
        return usd(str(Decimal(first) + Decimal(extra) * more))

    points = {
        name: cost(Decimal(mp))
        for name, mp in (("0.5MP", "0.5"), ("1MP", "1"), ("2MP", "2"), ("4MP", "4"))
    }
    return {**points, "match_input_image": points["4MP"]}


_FLUX2_PRICE = by_field("resolution", "1MP")

_SPECS = (
    ModelSpec(
        id="flux-1.1-pro",
        label="FLUX 1.1 [pro]",
        family="flux",
        params_key=KEY,
        params=FluxParams,
        description="FLUX 1.1 [pro]: fast, high-quality text-to-image with an image prompt.",
        pricing=Pricing(
            {"default": usd("0.04")}, source="BFL list price US$0.04/image, rounded up [unverified]"
        ),
        capabilities=Capabilities(image_input=True, max_input_images=1, max_resolution="1440px"),
        routes=(
            Route("bfl", "flux-pro-1.1", FLUX_11_BFL),
            Route("replicate", "black-forest-labs/flux-1.1-pro", FLUX_11_REPLICATE),
            Route("fal", "fal-ai/flux-pro/v1.1", FLUX_11_FAL),
        ),
        rules=(
            *_references("flux-1.1-pro", 0),
            within(KEY, ("width", "height"), 256, 1440, "flux-1.1-pro"),
        ),
    ),
    ModelSpec(
        id="flux-1.1-pro-ultra",
        label="FLUX 1.1 [pro] ultra",
        family="flux",
        params_key=KEY,
        params=FluxParams,
        description="FLUX 1.1 [pro] ultra: up to 4 MP, with a raw mode for natural-looking photos.",
        pricing=Pricing(
            {"default": usd("0.06")}, source="BFL list price US$0.06/image, rounded up [unverified]"
        ),
        capabilities=Capabilities(image_input=True, max_input_images=1, max_resolution="4MP"),
        routes=(
            Route("bfl", "flux-pro-1.1-ultra", FLUX_ULTRA_BFL),
            Route("replicate", "black-forest-labs/flux-1.1-pro-ultra", FLUX_11_ULTRA_REPLICATE),
            Route("fal", "fal-ai/flux-pro/v1.1-ultra", FLUX_11_ULTRA_FAL),
        ),
        rules=_references("flux-1.1-pro-ultra", 0),
    ),
    ModelSpec(
        id="flux-2-pro",
        label="FLUX.2 [pro]",
        family="flux",
        params_key=KEY,
        params=Flux2Params,
        description="FLUX.2 [pro]: production generation and editing with up to 8 references.",
        pricing=Pricing(
            _per_megapixel("0.03", "0.015"),
            select=_FLUX2_PRICE,
            source="BFL list price US$0.03 for the first output MP + US$0.015 per extra MP, "
            "rounded up; match_input_image charged as 4MP [unverified]",
        ),
        capabilities=Capabilities(
            image_input=True, editing=True, max_input_images=8, max_resolution="4MP"
        ),
        routes=(
            Route("bfl", "flux-2-pro", FLUX_2_BFL),
            Route("replicate", "black-forest-labs/flux-2-pro", FLUX_2_PRO_REPLICATE),
            Route("fal", "fal-ai/flux-2-pro", FLUX_2_FAL),
        ),
        rules=_references("flux-2-pro", 8),
    ),
    ModelSpec(
        id="flux-2-dev",
        label="FLUX.2 [dev]",
        family="flux",
        params_key=KEY,
        params=FluxParams,
        description="FLUX.2 [dev]: open-weights model with up to 5 reference images.",
        pricing=Pricing(
            {"default": usd("0.012")},
            source="fal.ai list price US$0.012 per MP (fal-ai/flux-2) at 1 MP, rounded up "
            "[unverified]",
        ),
        capabilities=Capabilities(image_input=True, editing=True, max_input_images=5),
        routes=(
            Route("replicate", "black-forest-labs/flux-2-dev", FLUX_2_DEV_REPLICATE),
            Route("fal", "fal-ai/flux-2", FLUX_2_FAL),
        ),
        rules=_references("flux-2-dev", 5),
    ),
    ModelSpec(
        id="flux-2-flex",
        label="FLUX.2 [flex]",
        family="flux",
        params_key=KEY,
        params=Flux2Params,
        description="FLUX.2 [flex]: adjustable steps and guidance for typography and fine detail.",
        pricing=Pricing(
            _per_megapixel("0.06", "0.06"),
            select=_FLUX2_PRICE,
            source="BFL list price US$0.06 per output MP (the first MP charged in full), rounded "
            "up; match_input_image charged as 4MP [unverified]",
        ),
        capabilities=Capabilities(
            image_input=True, editing=True, max_input_images=10, max_resolution="4MP"
        ),
        routes=(
            Route("bfl", "flux-2-flex", FLUX_2_FLEX_BFL),
            Route("replicate", "black-forest-labs/flux-2-flex", FLUX_2_FLEX_REPLICATE),
            Route("fal", "fal-ai/flux-2-flex", FLUX_2_FAL),
        ),
        rules=_references("flux-2-flex", 10),
    ),
    ModelSpec(
        id="flux-2-max",
        label="FLUX.2 [max]",
        family="flux",
        params_key=KEY,
        params=Flux2Params,
        description="FLUX.2 [max]: BFL's highest-quality generation and editing, up to 4 MP.",
        pricing=Pricing(
            _per_megapixel("0.07", "0.03"),
            select=_FLUX2_PRICE,
            source="BFL list price US$0.07 for the first output MP + US$0.03 per extra MP, "
            "rounded up; match_input_image charged as 4MP [unverified]",
        ),
        capabilities=Capabilities(
            image_input=True, editing=True, max_input_images=8, max_resolution="4MP"
        ),
        routes=(
            Route("bfl", "flux-2-max", FLUX_2_BFL),
            Route("replicate", "black-forest-labs/flux-2-max", FLUX_2_MAX_REPLICATE),
            Route("fal", "fal-ai/flux-2-max", FLUX_2_FAL),
        ),
        rules=_references("flux-2-max", 8),
    ),
)
_SIDES_TOGETHER = (requires(KEY, "width", "height"), requires(KEY, "height", "width"))
"""Every route sends ``width`` and ``height`` as one size: one without the other is refused."""
SPECS = tuple(replace(spec, rules=(*_SIDES_TOGETHER, *spec.rules)) for spec in _SPECS)
