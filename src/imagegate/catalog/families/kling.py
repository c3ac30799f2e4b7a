"""Kling Image (``klingImageParams``): Kuaishou's image model, ``n`` images per job."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from imagegate.catalog.fields import Uri
from imagegate.catalog.inputs import fal, same
from imagegate.catalog.params import Params
from imagegate.catalog.pricing import count_field
from imagegate.catalog.rules import excludes, requires
from imagegate.catalog.spec import Capabilities, ModelSpec, Pricing
from imagegate.types import Route

__all__ = ["SPECS", "KlingImageParams"]

KLING_FAL = fal({**same("aspect_ratio", "negative_prompt", "image_fidelity"), "image": "image_url"})


KEY = "klingImageParams"


class KlingImageParams(Params):
    model_config = ConfigDict(title=KEY)

    model_name: Literal["kling-v1", "kling-v1-5", "kling-v2"] = "kling-v1"
    negative_prompt: str | None = Field(default=None, max_length=2500)
    image: Uri | None = None
    image_fidelity: float | None = Field(default=None, ge=0, le=1)
    n: int = Field(default=1, ge=1, le=4)
    aspect_ratio: Literal["16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3"] | None = None


SPECS = (
    ModelSpec(
        id="kling-image",
        label="Kling Image",
        family="kling",
        params_key=KEY,
        params=KlingImageParams,
        description="Kuaishou Kling image models v1-v2: up to 4 images per job, image-to-image.",
        pricing=Pricing(
            {"default": 2}, per_output=True, source="Apiframe docs-v2: 2 credits per image"
        ),
        capabilities=Capabilities(image_input=True, max_input_images=1, max_outputs=4),
        routes=(
            Route("kling", "kling-image"),
            Route("fal", "fal-ai/kling-image/v3/text-to-image", KLING_FAL),
        ),
        outputs=count_field("n"),
        # Kling weighs the reference image by it; without an image it would reach no upstream.
        rules=(
            requires(KEY, "image_fidelity", "image"),
            excludes(KEY, "negative_prompt", "image", "Kling's image-to-image takes none"),
        ),
    ),
)
