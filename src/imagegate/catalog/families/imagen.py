"""Google Imagen (``imagenParams``): five text-to-image models, one image per job.

Google discontinued every Imagen model on 2026-08-17, and the aggregator slugs that proxied them
(Replicate ``google/imagen-*``, fal ``fal-ai/imagen4/*``) answer 404 since, so those are
``retired_routes``: never chosen, kept so an operator who re-points an id at one of them with a
route override gets its input table. With substitutes allowed the ids run on Nano Banana, at the
Imagen price. Upstream, 2K output exists only for Imagen 4 and Imagen 4 Ultra.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict

from imagegate.catalog.inputs import fal, replicate, same
from imagegate.catalog.params import Params
from imagegate.catalog.pricing import usd
from imagegate.catalog.rules import one_of
from imagegate.catalog.spec import Capabilities, ModelSpec, Pricing, RuleCheck
from imagegate.types import Route, RouteInputs

__all__ = ["SPECS", "ImagenParams"]

IMAGEN_FAL = fal({**same("aspect_ratio"), "image_size": "resolution"})
IMAGEN_REPLICATE = replicate(
    same("aspect_ratio", "output_format", "image_size", "safety_filter_level"),
    {"output_format": "jpg"},
)
IMAGEN_4_FAST_REPLICATE = replicate(
    same("aspect_ratio", "output_format", "safety_filter_level"), {"output_format": "jpg"}
)


KEY = "imagenParams"
RETIRED = "2026-08-17"
SUBSTITUTE = Route("gemini", "gemini-2.5-flash-image", RouteInputs(values={"image_size": ("1K",)}))
"""Nano Banana, Google's own successor; ``aspect_ratio`` carries over, the output is a 1K PNG (a
2K job is refused rather than served at 1K; ``output_format`` has a default, so a JPEG cannot be
told from a request that named none and is served as PNG)."""


class ImagenParams(Params):
    model_config = ConfigDict(title=KEY)

    aspect_ratio: Literal["1:1", "9:16", "16:9", "3:4", "4:3"] = "1:1"
    output_format: Literal["jpg", "png"] = "jpg"
    image_size: Literal["1K", "2K"] = "1K"


def _model(
    model_id: str,
    label: str,
    description: str,
    pricing: Pricing,
    retired: tuple[Route, ...],
    *,
    two_k: bool,
) -> ModelSpec:
    rules: tuple[RuleCheck, ...] = () if two_k else (one_of(KEY, "image_size", ("1K",), model_id),)
    return ModelSpec(
        id=model_id,
        label=label,
        family="imagen",
        params_key=KEY,
        params=ImagenParams,
        description=description,
        pricing=pricing,
        capabilities=Capabilities(max_resolution="2K" if two_k else "1K"),
        retired_routes=retired,
        rules=rules,
        retired_upstream=RETIRED,
        substitutes=(SUBSTITUTE,),
    )


def _list_price(price: str) -> Pricing:
    return Pricing(
        {"default": usd(price)},
        source=f"Google Imagen list price US${price}/image before retirement, rounded up "
        "[unverified]",
    )


SPECS = (
    _model(
        "imagen-3",
        "Imagen 3",
        "Google Imagen 3: photorealistic text-to-image (retired by Google).",
        _list_price("0.04"),
        (Route("replicate", "google/imagen-3", IMAGEN_REPLICATE),),
        two_k=False,
    ),
    _model(
        "imagen-3-fast",
        "Imagen 3 Fast",
        "Google Imagen 3 Fast: quicker, cheaper Imagen 3 (retired by Google).",
        _list_price("0.02"),
        (Route("replicate", "google/imagen-3-fast", IMAGEN_REPLICATE),),
        two_k=False,
    ),
    _model(
        "imagen-4",
        "Imagen 4",
        "Google Imagen 4: detailed text-to-image up to 2K (retired by Google).",
        Pricing({"default": 7}, source="Apiframe docs: 7 credits"),
        (
            Route("replicate", "google/imagen-4", IMAGEN_REPLICATE),
            Route("fal", "fal-ai/imagen4/preview", IMAGEN_FAL),
        ),
        two_k=True,
    ),
    _model(
        "imagen-4-ultra",
        "Imagen 4 Ultra",
        "Google Imagen 4 Ultra: the most faithful Imagen renders, up to 2K (retired by Google).",
        _list_price("0.06"),
        (
            Route("replicate", "google/imagen-4-ultra", IMAGEN_REPLICATE),
            Route("fal", "fal-ai/imagen4/preview/ultra", IMAGEN_FAL),
        ),
        two_k=True,
    ),
    _model(
        "imagen-4-fast",
        "Imagen 4 Fast",
        "Google Imagen 4 Fast: low-latency Imagen 4 at 1K (retired by Google).",
        _list_price("0.02"),
        (
            Route("replicate", "google/imagen-4-fast", IMAGEN_4_FAST_REPLICATE),
            Route("fal", "fal-ai/imagen4/preview/fast", IMAGEN_FAL),
        ),
        two_k=False,
    ),
)
