"""Alibaba Wan image models (``wanImageParams``, ``wanImage27Params``), one image per job.

Wan 2.7 and 2.7 Pro are the only models whose prompt may be 5000 characters (Apiframe's schema).
Prices are DashScope's yuan list prices converted with ``pricing.CNY_IN_USD``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from imagegate.catalog.fields import Uri
from imagegate.catalog.inputs import FAL_SIZES, fal, replicate, same
from imagegate.catalog.params import Params
from imagegate.catalog.pricing import CNY_IN_USD, cny
from imagegate.catalog.spec import Capabilities, ModelSpec, Pricing
from imagegate.types import Route, RouteInputs

__all__ = ["SPECS", "WanImage27Params", "WanImageParams"]

WanAspectRatio = Literal["1:1", "2:3", "3:2", "3:4", "4:3", "9:16", "16:9", "21:9"]


class WanImageParams(Params):
    model_config = ConfigDict(title="wanImageParams")

    aspect_ratio: WanAspectRatio | None = None
    image: Uri | None = None
    negative_prompt: str | None = Field(default=None, max_length=500)
    prompt_extend: bool | None = None
    seed: int | None = Field(default=None, ge=0, le=2147483647)


class WanImage27Params(Params):
    model_config = ConfigDict(title="wanImage27Params")

    aspect_ratio: WanAspectRatio | None = None
    image: Uri | None = None
    seed: int | None = Field(default=None, ge=0, le=2147483647)
    thinking_mode: bool | None = None


WAN_DASHSCOPE = RouteInputs(shape="generation")
WAN_FAL = fal(
    {
        **same("negative_prompt", "seed"),
        "image": "image_urls",
        "prompt_extend": "enable_prompt_expansion",
    },
    {"image_urls": "list"},
    sizes=FAL_SIZES,
    edit="image",
)
WAN_REPLICATE = replicate(
    same("aspect_ratio", "image", "negative_prompt", "prompt_extend", "seed", "thinking_mode")
)


def _dashscope(price: str) -> Pricing:
    return Pricing(
        {"default": cny(price)},
        source=f"DashScope list price CNY {price}/image at US${CNY_IN_USD}/CNY, rounded up",
    )


_EDITING = Capabilities(image_input=True, editing=True, max_input_images=1)

SPECS = (
    ModelSpec(
        id="wan-image-2.6",
        label="Wan Image 2.6",
        family="wan",
        params_key="wanImageParams",
        params=WanImageParams,
        description="Alibaba Wan 2.6 image: generation and single-image editing.",
        pricing=_dashscope("0.2"),
        capabilities=_EDITING,
        routes=(Route("dashscope", "wan2.6-image", WAN_DASHSCOPE),),
    ),
    ModelSpec(
        id="wan-image-2.7",
        label="Wan Image 2.7",
        family="wan",
        params_key="wanImage27Params",
        params=WanImage27Params,
        description="Alibaba Wan 2.7 image: long prompts (5000 characters) and a thinking mode.",
        pricing=_dashscope("0.2"),
        capabilities=_EDITING,
        routes=(
            Route("dashscope", "wan2.7-image", WAN_DASHSCOPE),
            Route("replicate", "wan-video/wan-2.7-image", WAN_REPLICATE),
            Route("fal", "fal-ai/wan/v2.7/text-to-image", WAN_FAL),
        ),
        prompt_max_length=5000,
    ),
    ModelSpec(
        id="wan-image-2.7-pro",
        label="Wan Image 2.7 Pro",
        family="wan",
        params_key="wanImage27Params",
        params=WanImage27Params,
        description="Alibaba Wan 2.7 Pro image: higher-quality Wan 2.7, 5000-character prompts.",
        pricing=_dashscope("0.5"),
        capabilities=_EDITING,
        routes=(
            Route("dashscope", "wan2.7-image-pro", WAN_DASHSCOPE),
            Route("replicate", "wan-video/wan-2.7-image-pro", WAN_REPLICATE),
            Route("fal", "fal-ai/wan/v2.7/pro/text-to-image", WAN_FAL),
        ),
        prompt_max_length=5000,
    ),
)
