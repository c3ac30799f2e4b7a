"""Alibaba Qwen-Image (``qwenImageParams``, ``qwenImage2Params``).

``qwen-image`` has its own fal-shaped schema (``num_images`` 1-4 images per job, a ``task_type``
that decides whether ``image_url`` is needed); Qwen-Image 2.0 and 2.0 Pro share a small unified
generate-or-edit schema with one optional ``image``. Prices are DashScope's yuan list prices
(``upstream/dashscope/*.json``) converted with ``pricing.CNY_IN_USD``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from imagegate.catalog.fields import Uri
from imagegate.catalog.inputs import FAL_SIZES, fal, replicate, same
from imagegate.catalog.params import Params
from imagegate.catalog.pricing import CNY_IN_USD, cny, count_field
from imagegate.catalog.spec import Capabilities, ModelSpec, Pricing
from imagegate.types import Route, RouteInputs

__all__ = ["SPECS", "QwenImage2Params", "QwenImageParams"]


class QwenImageParams(Params):
    model_config = ConfigDict(title="qwenImageParams")

    task_type: Literal["text-to-image", "image-to-image", "image-edit"] | None = None
    image_url: Uri | None = None
    strength: float | None = Field(default=None, ge=0, le=1)
    image_size: (
        Literal[
            "square",
            "square_hd",
            "portrait_4_3",
            "portrait_16_9",
            "landscape_4_3",
            "landscape_16_9",
        ]
        | None
    ) = None
    num_images: int = Field(default=1, ge=1, le=4)
    num_inference_steps: int | None = Field(default=None, ge=2, le=250)
    guidance_scale: float | None = Field(default=None, ge=0, le=20)
    negative_prompt: str | None = Field(default=None, max_length=500)
    acceleration: Literal["none", "regular", "high"] | None = None
    output_format: Literal["png", "jpeg"] | None = None
    seed: int | None = None


class QwenImage2Params(Params):
    model_config = ConfigDict(title="qwenImage2Params")

    image: Uri | None = None
    aspect_ratio: (
        Literal["1:1", "2:3", "3:2", "3:4", "4:3", "9:16", "16:9", "21:9", "2:1", "1:2"] | None
    ) = None
    negative_prompt: str | None = Field(default=None, max_length=500)
    seed: int | None = None


QWEN_IMAGE_DASHSCOPE = RouteInputs(
    shape="synthesis",
    refuses=("acceleration", "guidance_scale", "num_inference_steps", "strength"),
    values={"output_format": ("png",)},
)
"""DashScope's qwen-image takes a size, ``n``, ``negative_prompt``, ``prompt_extend``, ``seed``
and ``watermark``: the fal-style knobs are refused (such a job runs on fal or Replicate), and
it always answers PNG."""
QWEN_IMAGE_2_DASHSCOPE = RouteInputs(shape="multimodal")
QWEN_IMAGE_FAL = fal(
    same(
        "image_url", "strength", "image_size", "num_inference_steps", "guidance_scale",
        "negative_prompt", "acceleration", "output_format", "seed",
    ),
    {"output_format": "jpeg"},
)  # fmt: skip
QWEN_IMAGE_2_FAL = fal(
    {**same("negative_prompt", "seed"), "image": "image_urls"},
    {"image_urls": "list"},
    sizes={**FAL_SIZES, "21:9": "landscape_16_9"},
    edit="image",
)
QWEN_IMAGE_REPLICATE = replicate(
    {
        "image_url": "image",
        "image": "image",
        "strength": "strength",
        "aspect_ratio": "aspect_ratio",
        "num_inference_steps": "num_inference_steps",
        "guidance_scale": "guidance",
        "negative_prompt": "negative_prompt",
        "output_format": "output_format",
        "seed": "seed",
        "acceleration": "go_fast",
    },
    {"output_format": "jpg", "go_fast": "not_none"},
)


def _source_image_needed(params: BaseModel | None, _prompt: str) -> Mapping[str, list[str]]:
    """Image-to-image and edit tasks transform ``image_url``; without it there is nothing to do,
    and a text-to-image task would leave it unused."""
    if not isinstance(params, QwenImageParams) or params.task_type is None:
        return {}
    if params.task_type == "text-to-image":
        if params.image_url is None:
            return {}
        return {"qwenImageParams.image_url": ["is not used by task_type text-to-image"]}
    if params.image_url is not None:
        return {}
    return {"qwenImageParams.image_url": [f"is required when task_type is {params.task_type}"]}


def _dashscope(price: str) -> str:
    return f"DashScope list price CNY {price}/image at US${CNY_IN_USD}/CNY, rounded up"


SPECS = (
    ModelSpec(
        id="qwen-image",
        label="Qwen-Image",
        family="qwen",
        params_key="qwenImageParams",
        params=QwenImageParams,
        description="Alibaba Qwen-Image: strong Chinese and English text rendering, 1-4 images.",
        pricing=Pricing({"default": cny("0.25")}, per_output=True, source=_dashscope("0.25")),
        capabilities=Capabilities(
            image_input=True, editing=True, max_input_images=1, max_outputs=4
        ),
        routes=(
            Route("dashscope", "qwen-image", QWEN_IMAGE_DASHSCOPE),
            Route("replicate", "qwen/qwen-image", QWEN_IMAGE_REPLICATE),
            Route("fal", "fal-ai/qwen-image", QWEN_IMAGE_FAL),
        ),
        outputs=count_field("num_images"),
        rules=(_source_image_needed,),
    ),
    ModelSpec(
        id="qwen-image-2",
        label="Qwen-Image 2.0",
        family="qwen",
        params_key="qwenImage2Params",
        params=QwenImage2Params,
        description="Alibaba Qwen-Image 2.0: unified generation and editing in one model.",
        pricing=Pricing({"default": 3}, source="Apiframe docs-v2: 3 credits"),
        capabilities=Capabilities(image_input=True, editing=True, max_input_images=1),
        routes=(
            Route("dashscope", "qwen-image-2.0", QWEN_IMAGE_2_DASHSCOPE),
            Route("fal", "fal-ai/qwen-image-2/text-to-image", QWEN_IMAGE_2_FAL),
        ),
    ),
    ModelSpec(
        id="qwen-image-2-pro",
        label="Qwen-Image 2.0 Pro",
        family="qwen",
        params_key="qwenImage2Params",
        params=QwenImage2Params,
        description="Alibaba Qwen-Image 2.0 Pro: higher-fidelity generation and editing.",
        pricing=Pricing({"default": cny("0.5")}, source=_dashscope("0.5")),
        capabilities=Capabilities(image_input=True, editing=True, max_input_images=1),
        routes=(
            Route("dashscope", "qwen-image-2.0-pro", QWEN_IMAGE_2_DASHSCOPE),
            Route("fal", "fal-ai/qwen-image-2/pro/text-to-image", QWEN_IMAGE_2_FAL),
        ),
    ),
)
