"""Google Nano Banana (``nanoBananaParams``): Gemini image models, one image per job.

The four models share one published schema, but upstream they differ: Nano Banana
(``gemini-2.5-flash-image``) is 1K only and has no search grounding; Pro has 1K/2K/4K and search
grounding; Nano Banana 2 (``gemini-3.1-flash-image``) alone has ``512px``; Nano Banana 2 Lite
(``gemini-3.1-flash-lite-image``) is 1K only. Those differences are rules here. Prices are
Google's per-image list prices by output size.
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
from imagegate.types import Route

__all__ = ["SPECS", "NanoBananaParams"]

NANO_BANANA_FAL = fal(
    {
        **same("aspect_ratio", "resolution", "output_format"),
        "image_input": "image_urls",
        "google_search": "enable_web_search",
    },
    {"output_format": "jpeg", "resolution": "nano_resolution"},
    edit="image_input",
)
_REPLICATE = same("aspect_ratio", "resolution", "output_format", "image_input")
NANO_BANANA_REPLICATE = replicate(_REPLICATE, {"output_format": "jpg"})
NANO_BANANA_2_REPLICATE = replicate(
    {**_REPLICATE, **same("google_search", "image_search")}, {"output_format": "jpg"}
)
NANO_BANANA_2_LITE_REPLICATE = replicate(
    same("aspect_ratio", "output_format", "image_input"), {"output_format": "jpg"}
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
            Route("gemini", "gemini-2.5-flash-image"),
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
            Route("gemini", "gemini-3-pro-image"),
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
            Route("gemini", "gemini-3.1-flash-image"),
            Route("replicate", "google/nano-banana-2", NANO_BANANA_2_REPLICATE),
            Route("fal", "fal-ai/nano-banana-2", NANO_BANANA_FAL),
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
            Route("gemini", "gemini-3.1-flash-lite-image"),
            Route("replicate", "google/nano-banana-2-lite", NANO_BANANA_2_LITE_REPLICATE),
            Route("fal", "google/nano-banana-2-lite", NANO_BANANA_FAL),
        ),
        rules=(one_of(KEY, "resolution", ("1K",), "nano-banana-2-lite"),),
    ),
)
