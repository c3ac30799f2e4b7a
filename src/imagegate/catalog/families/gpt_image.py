"""OpenAI GPT Image (``gptImageParams``, ``gptImage2Params``): priced per image by quality.

GPT Image 2 has its own params object in Apiframe's schema: no ``input_fidelity``, no transparent
background (OpenAI ships that as a preview only on this model), and a ``moderation`` level.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from imagegate.catalog.fields import Uri
from imagegate.catalog.inputs import fal, replicate, same
from imagegate.catalog.params import Params
from imagegate.catalog.pricing import usd
from imagegate.catalog.rules import excludes, max_items
from imagegate.catalog.spec import Capabilities, ModelSpec, Pricing
from imagegate.types import Route

__all__ = ["SPECS", "GptImage2Params", "GptImageParams"]


class GptImageParams(Params):
    model_config = ConfigDict(title="gptImageParams")

    NULLABLE = frozenset({"input_images"})

    quality: Literal["low", "medium", "high", "auto"] = "auto"
    aspect_ratio: Literal["1:1", "3:2", "2:3"] = "1:1"
    output_format: Literal["png", "jpeg", "webp"] = "webp"
    background: Literal["auto", "transparent", "opaque"] = "auto"
    input_images: list[Uri] | None = None
    input_fidelity: Literal["low", "high"] = "low"
    number_of_images: int = Field(default=1, ge=1, le=10)


class GptImage2Params(Params):
    model_config = ConfigDict(title="gptImage2Params")

    NULLABLE = frozenset({"input_images"})

    quality: Literal["low", "medium", "high", "auto"] = "auto"
    aspect_ratio: Literal["1:1", "3:2", "2:3"] = "1:1"
    output_format: Literal["png", "jpeg", "webp"] = "webp"
    background: Literal["auto", "opaque"] = "auto"
    input_images: list[Uri] | None = None
    moderation: Literal["auto", "low"] = "auto"
    number_of_images: int = Field(default=1, ge=1, le=10)


def _fidelity_edits(params: BaseModel | None, _prompt: str) -> Mapping[str, list[str]]:
    """``input_fidelity`` is a field of OpenAI's edit request only: asking for ``high`` without
    ``input_images`` (a generation) would reach no upstream, so it is refused."""
    if getattr(params, "input_fidelity", "low") == "low" or getattr(params, "input_images", None):
        return {}
    return {"gptImageParams.input_fidelity": ["applies to edits only (set input_images)"]}


GPT_IMAGE_FAL = fal(
    {
        **same("quality", "background", "output_format", "input_fidelity"),
        "input_images": "image_urls",
    },
    {"output_format": "jpeg"},
    sizes={"1:1": "1024x1024", "3:2": "1536x1024", "2:3": "1024x1536"},
    edit="input_images",
)
GPT_IMAGE_REPLICATE = replicate(
    same(
        "quality", "aspect_ratio", "output_format", "background", "input_images",
        "input_fidelity", "moderation", "output_compression",
    ),
    count="number_of_images",
)  # fmt: skip


def _quality(params: BaseModel | None) -> str:
    return params.quality if isinstance(params, GptImageParams | GptImage2Params) else "auto"


def _count(params: BaseModel | None) -> int:
    if isinstance(params, GptImageParams | GptImage2Params):
        return params.number_of_images
    return 1


SPECS = (
    ModelSpec(
        id="gpt-image-1.5",
        label="GPT Image 1.5",
        family="gpt-image",
        params_key="gptImageParams",
        params=GptImageParams,
        description="OpenAI's GPT Image 1.5: strong prompt following, editing with input images.",
        pricing=Pricing(
            {"low": 4, "medium": 9, "high": 24, "auto": 24},
            select=_quality,
            per_output=True,
            source="Apiframe docs: per image low 4, medium 9, high 24, auto 24",
        ),
        capabilities=Capabilities(
            image_input=True, editing=True, max_input_images=16, max_outputs=10
        ),
        routes=(Route("openai", "gpt-image-1.5"),),
        outputs=_count,
        rules=(max_items("gptImageParams", "input_images", 16, "gpt-image-1.5"), _fidelity_edits),
    ),
    ModelSpec(
        id="gpt-image-2",
        label="GPT Image 2",
        family="gpt-image",
        params_key="gptImage2Params",
        params=GptImage2Params,
        description="OpenAI's GPT Image 2: sharper text and instruction following, with editing.",
        pricing=Pricing(
            {
                "low": usd("0.006"),
                "medium": usd("0.053"),
                "high": usd("0.211"),
                "auto": usd("0.211"),
            },
            select=_quality,
            per_output=True,
            source="OpenAI token prices as per-image figures for gpt-image-2 at 1024x1024: "
            "low US$0.006, medium 0.053, high 0.211 (auto billed as high), rounded up; "
            "the same price for 3:2 and 2:3 [unverified]",
        ),
        capabilities=Capabilities(
            image_input=True, editing=True, max_input_images=16, max_outputs=10
        ),
        routes=(
            Route("openai", "gpt-image-2"),
            Route("replicate", "openai/gpt-image-2", GPT_IMAGE_REPLICATE),
            Route("fal", "openai/gpt-image-2", GPT_IMAGE_FAL),
        ),
        outputs=_count,
        rules=(
            max_items("gptImage2Params", "input_images", 16, "gpt-image-2"),
            # OpenAI's CreateImageEditRequest has no moderation field
            excludes("gptImage2Params", "moderation", "input_images", "edits", default="auto"),
        ),
    ),
)
