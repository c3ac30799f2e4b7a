"""xAI Grok Imagine (``grokImagineParams``): generation, or editing of one ``image``."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict

from imagegate.catalog.fields import Uri
from imagegate.catalog.inputs import fal, same
from imagegate.catalog.params import Params
from imagegate.catalog.pricing import usd
from imagegate.catalog.spec import Capabilities, ModelSpec, Pricing
from imagegate.types import Route

__all__ = ["SPECS", "GrokImagineParams"]

GROK_FAL = fal({**same("aspect_ratio"), "image": "image_url"}, edit="image")


KEY = "grokImagineParams"


class GrokImagineParams(Params):
    model_config = ConfigDict(title=KEY)

    aspect_ratio: Literal["1:1", "2:3", "3:2", "16:9", "9:16"] | None = None
    image: Uri | None = None


SPECS = (
    ModelSpec(
        id="grok-imagine-image",
        label="Grok Imagine Image",
        family="grok",
        params_key=KEY,
        params=GrokImagineParams,
        description="xAI Grok Imagine: fast image generation and single-image editing.",
        pricing=Pricing(
            {"default": usd("0.02")}, source="xAI API list price US$0.02/image [unverified]"
        ),
        capabilities=Capabilities(image_input=True, editing=True, max_input_images=1),
        routes=(
            Route("xai", "grok-imagine-image"),
            Route("fal", "xai/grok-imagine-image", GROK_FAL),
        ),
    ),
)
