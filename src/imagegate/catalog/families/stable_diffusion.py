"""Stability AI Stable Diffusion 3 and 3.5 (``stableDiffusionParams``): one image per job.

Apiframe publishes one params object for the four ids, the input schema of Replicate's official
``stability-ai/*`` models, which are their only route here (Stability's own API and fal use other
inputs and none of their slugs is documented in our references). An ``image`` switches the model
to image-to-image, with ``prompt_strength`` as the denoising strength. Replicate bills these
models per output image.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from imagegate.catalog.fields import Uri
from imagegate.catalog.inputs import replicate, same
from imagegate.catalog.params import Params
from imagegate.catalog.pricing import usd
from imagegate.catalog.spec import Capabilities, ModelSpec, Pricing
from imagegate.types import Route, RouteInputs

__all__ = ["SPECS", "StableDiffusionParams"]

KEY = "stableDiffusionParams"


class StableDiffusionParams(Params):
    model_config = ConfigDict(title=KEY)

    aspect_ratio: (
        Literal["1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "9:16", "9:21"] | None
    ) = None
    cfg: float | None = Field(default=None, ge=0, le=20)
    image: Uri | None = None
    prompt_strength: float | None = Field(default=None, ge=0, le=1)
    negative_prompt: str | None = Field(default=None, max_length=2000)
    output_format: Literal["webp", "jpg", "png"] | None = None
    output_quality: int | None = Field(default=None, ge=0, le=100)
    seed: int | None = None
    steps: int | None = Field(default=None, ge=1, le=40)


_IMAGE_TO_IMAGE = Capabilities(image_input=True, editing=True, max_input_images=1)


def _replicate(model_id: str) -> RouteInputs:
    """SD 3.5 Large Turbo takes no ``steps`` and no ``output_quality``; the others take both."""
    names = ["aspect_ratio", "cfg", "image", "prompt_strength", "negative_prompt", "steps"]
    names += ["output_format", "output_quality", "seed"]
    if model_id.endswith("-turbo"):
        names = [name for name in names if name not in ("steps", "output_quality")]
    return replicate(same(*names), {"output_format": "jpg"})


def _model(model_id: str, label: str, description: str, price: str, source: str) -> ModelSpec:
    return ModelSpec(
        id=model_id,
        label=label,
        family="stable-diffusion",
        params_key=KEY,
        params=StableDiffusionParams,
        description=description,
        pricing=Pricing({"default": usd(price)}, source=source),
        capabilities=_IMAGE_TO_IMAGE,
        routes=(Route("replicate", f"stability-ai/{model_id}", _replicate(model_id)),),
    )


SPECS = (
    _model(
        "stable-diffusion-3.5-large",
        "Stable Diffusion 3.5 Large",
        "Stability AI SD 3.5 Large (8B): detailed images, typography, image-to-image.",
        "0.065",
        "Replicate list price US$0.065/image (stability-ai/stable-diffusion-3.5-large), "
        "rounded up [unverified]",
    ),
    _model(
        "stable-diffusion-3.5-large-turbo",
        "Stable Diffusion 3.5 Large Turbo",
        "Stability AI SD 3.5 Large Turbo: the 8B model distilled to a few sampling steps.",
        "0.04",
        "Replicate list price US$0.04/image (stability-ai/stable-diffusion-3.5-large-turbo) "
        "[unverified]",
    ),
    _model(
        "stable-diffusion-3.5-medium",
        "Stable Diffusion 3.5 Medium",
        "Stability AI SD 3.5 Medium (2.5B): fast, inexpensive text-to-image and image-to-image.",
        "0.035",
        "Replicate list price US$0.035/image (stability-ai/stable-diffusion-3.5-medium) "
        "[unverified]",
    ),
    _model(
        "stable-diffusion-3",
        "Stable Diffusion 3",
        "Stability AI SD 3 Medium (2B): the first MMDiT Stable Diffusion, with image-to-image.",
        "0.035",
        "Replicate list price US$0.035/image (stability-ai/stable-diffusion-3) [unverified]",
    ),
)
