"""OpenAI GPT Image (``gptImageParams``): priced per image by quality."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from imagegate.catalog.fields import Uri
from imagegate.catalog.params import Params
from imagegate.catalog.spec import Capabilities, ModelSpec, Pricing
from imagegate.providers.port import Route

__all__ = ["SPECS", "GptImageParams"]


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


def _quality(params: BaseModel | None) -> str:
    return params.quality if isinstance(params, GptImageParams) else "auto"


def _count(params: BaseModel | None) -> int:
    return params.number_of_images if isinstance(params, GptImageParams) else 1


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
    ),
)
