"""Google Nano Banana (``nanoBananaParams``): Gemini image models, one image per job.

The four models share one published schema, but upstream they differ: Nano Banana
(``gemini-2.5-flash-image``) is 1K only and has no search grounding; Pro has 1K/2K/4K and search
grounding; Nano Banana 2 (``gemini-3.1-flash-image``) alone has ``512px``; Nano Banana 2 Lite
(``gemini-3.1-flash-lite-image``) is 1K only. Those differences are rules here. Prices are
Google's per-image list prices by output size.

``aspect_ratio`` is free text in the published schema, but every route takes only its vendor's
list: Google's ten ratios (``GEMINI_RATIOS``; Nano Banana 2 adds four extreme ones), Replicate's
model pages the same ten plus ``9:21`` and ``match_input_image``. A ratio no route lists is a
400 at submit; one only Replicate lists skips the Gemini route.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from imagegate.catalog.fields import Uri
from imagegate.catalog.inputs import fal, replicate, same
from imagegate.catalog.params import Params
from imagegate.catalog.pricing import by_field, usd
from imagegate.catalog.rules import one_of, unsupported
from imagegate.catalog.spec import Capabilities, ModelSpec, Pricing
from imagegate.types import Route, RouteInputs

__all__ = ["SPECS", "NanoBananaParams"]

GEMINI_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
"""The ratios Gemini's image models take in ``imageConfig.aspectRatio`` (the SDK's
``AspectRatio`` enum; ``generative_service.proto``'s comment predates ``4:5``/``5:4``)."""
GEMINI_3_1_FLASH_RATIOS = (*GEMINI_RATIOS, "1:4", "4:1", "1:8", "8:1")
"""``gemini-3.1-flash-image`` alone adds the extreme ratios of the SDK's enum."""
REPLICATE_RATIOS = (
    "1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "4:5", "5:4", "21:9", "9:21",
    "match_input_image",
)  # fmt: skip
"""``google/nano-banana*`` on Replicate (the model pages' ``aspect_ratio`` enum)."""


def _gemini(ratios: tuple[str, ...]) -> RouteInputs:
    """Google's own API answers PNG and cannot be asked for another format (``outputMimeType``
    is Vertex-only), so a job asking for JPEG or WebP runs on Replicate or fal, which send it."""
    return RouteInputs(values={"aspect_ratio": ratios, "output_format": ("png",)})


GEMINI = _gemini(GEMINI_RATIOS)
GEMINI_3_1_FLASH = _gemini(GEMINI_3_1_FLASH_RATIOS)


def _fal(ratios: tuple[str, ...]) -> RouteInputs:
    """fal's Nano Banana endpoints relay to Google and take Google's ratios for the model."""
    return fal(
        {
            **same("aspect_ratio", "resolution", "output_format"),
            "image_input": "image_urls",
            "google_search": "enable_web_search",
        },
        {"output_format": "jpeg", "resolution": "nano_resolution"},
        edit="image_input",
        values={"aspect_ratio": ratios},
    )


NANO_BANANA_FAL = _fal(GEMINI_RATIOS)
NANO_BANANA_2_FAL = _fal(GEMINI_3_1_FLASH_RATIOS)
_REPLICATE = same("aspect_ratio", "resolution", "output_format", "image_input")
_REPLICATE_VALUES = {"aspect_ratio": REPLICATE_RATIOS}
NANO_BANANA_REPLICATE = replicate(_REPLICATE, {"output_format": "jpg"}, values=_REPLICATE_VALUES)
NANO_BANANA_2_REPLICATE = replicate(
    {**_REPLICATE, **same("google_search", "image_search")},
    {"output_format": "jpg"},
    values=_REPLICATE_VALUES,
)
NANO_BANANA_2_LITE_REPLICATE = replicate(
    same("aspect_ratio", "output_format", "image_input"),
    {"output_format": "jpg"},
    values=_REPLICATE_VALUES,
)


KEY = "nanoBananaParams"


class NanoBananaParams(Params):
    model_config = ConfigDict(title=KEY)

    aspect_ratio: str | None = None
    resolution: Literal["512px", "1K", "2K", "4K"] | None = None
    output_format: Literal["jpg", "png", "webp"] | None = None
    image_input: list[Uri] | None = Field(default=None, max_length=14)
    google_search: bool | None = None
    image_search: bool | None = None


SPECS = (
    ModelSpec(
        id="nano-banana",
        label="Nano Banana",
        family="nano-banana",
        params_key=KEY,
        params=NanoBananaParams,
        description="Google Gemini 2.5 Flash Image: fast generation and editing at 1K.",
        pricing=Pricing(
            {"default": usd("0.039")},
            source="Gemini API list price US$0.039/image (gemini-2.5-flash-image), rounded up "
            "[unverified]",
        ),
        capabilities=Capabilities(
            image_input=True, editing=True, max_input_images=14, max_resolution="1K"
        ),
        routes=(
            Route("gemini", "gemini-2.5-flash-image", GEMINI),
            Route("replicate", "google/nano-banana", NANO_BANANA_REPLICATE),
            Route("fal", "fal-ai/nano-banana", NANO_BANANA_FAL),
        ),
        rules=(
            one_of(KEY, "resolution", ("1K",), "nano-banana"),
            unsupported(KEY, "google_search", "nano-banana"),
            unsupported(KEY, "image_search", "nano-banana"),
        ),
    ),
    ModelSpec(
        id="nano-banana-pro",
        label="Nano Banana Pro",
        family="nano-banana",
        params_key=KEY,
        params=NanoBananaParams,
        description="Google Gemini 3 Pro Image: accurate text, search grounding, up to 4K.",
        pricing=Pricing(
            {"1K": usd("0.134"), "2K": usd("0.134"), "4K": usd("0.24")},
            select=by_field("resolution", "1K"),
            source="Gemini API list price (gemini-3-pro-image): US$0.134 per 1K/2K image, "
            "US$0.24 per 4K image, rounded up [unverified]",
        ),
        capabilities=Capabilities(
            image_input=True, editing=True, max_input_images=14, max_resolution="4K"
        ),
        routes=(
            Route("gemini", "gemini-3-pro-image", GEMINI),
            Route("replicate", "google/nano-banana-pro", NANO_BANANA_REPLICATE),
            Route("fal", "fal-ai/nano-banana-pro", NANO_BANANA_FAL),
        ),
        rules=(one_of(KEY, "resolution", ("1K", "2K", "4K"), "nano-banana-pro"),),
    ),
    ModelSpec(
        id="nano-banana-2",
        label="Nano Banana 2",
        family="nano-banana",
        params_key=KEY,
        params=NanoBananaParams,
        description="Google Gemini 3.1 Flash Image: fast, search grounding, 512px to 4K.",
        pricing=Pricing(
            {"512px": usd("0.045"), "1K": usd("0.067"), "2K": usd("0.101"), "4K": usd("0.151")},
            select=by_field("resolution", "1K"),
            source="Gemini API list price (gemini-3.1-flash-image): US$0.045 at 512px, "
            "0.067 at 1K, 0.101 at 2K, 0.151 at 4K per image, rounded up [unverified]",
        ),
        capabilities=Capabilities(
            image_input=True, editing=True, max_input_images=14, max_resolution="4K"
        ),
        routes=(
            Route("gemini", "gemini-3.1-flash-image", GEMINI_3_1_FLASH),
            Route("replicate", "google/nano-banana-2", NANO_BANANA_2_REPLICATE),
            Route("fal", "fal-ai/nano-banana-2", NANO_BANANA_2_FAL),
        ),
    ),
    ModelSpec(
        id="nano-banana-2-lite",
        label="Nano Banana 2 Lite",
        family="nano-banana",
        params_key=KEY,
        params=NanoBananaParams,
        description="Google Gemini 3.1 Flash-Lite Image: the fastest, cheapest Nano Banana, 1K.",
        pricing=Pricing(
            {"default": usd("0.034")},
            source="Gemini API list price US$0.034/image (gemini-3.1-flash-lite-image, 1K), "
            "rounded up [unverified]",
        ),
        capabilities=Capabilities(
            image_input=True, editing=True, max_input_images=14, max_resolution="1K"
        ),
        routes=(
            Route("gemini", "gemini-3.1-flash-lite-image", GEMINI),
            Route("replicate", "google/nano-banana-2-lite", NANO_BANANA_2_LITE_REPLICATE),
            Route("fal", "google/nano-banana-2-lite", NANO_BANANA_FAL),
        ),
        rules=(one_of(KEY, "resolution", ("1K",), "nano-banana-2-lite"),),
    ),
)
