"""OpenAI DALL·E (``dalleParams``): two text-to-image models, one image per job.

OpenAI shut both down on 2026-05-12. No aggregator is known to serve them since (Replicate's
``openai/dall-e-3`` is unverified and proxied OpenAI, so it is not a route). Each keeps its
``openai`` route, which works when the operator points the OpenAI provider at a compatible host or
aliases the id to a GPT image model (see ``imagegate.providers.openai``). With substitutes
allowed, a job no route can serve (a dead route answers 404) runs on GPT Image 1.5 instead, at
the DALL·E price.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict

from imagegate.catalog.params import Params
from imagegate.catalog.pricing import usd
from imagegate.catalog.spec import Capabilities, ModelSpec, Pricing
from imagegate.types import Route, RouteInputs

__all__ = ["SPECS", "DalleParams"]

KEY = "dalleParams"
RETIRED = "2026-05-12"
SUBSTITUTE = Route("openai", "gpt-image-1.5", RouteInputs(values={"style": ("vivid",)}))
"""OpenAI's own successor; ``aspect_ratio`` carries over, ``style`` has no equivalent (only the
default is taken)."""
DALLE_2 = RouteInputs(values={"aspect_ratio": ("1:1",), "style": ("vivid",)})
"""DALL·E 2 draws squares only and has no style: other values are refused, not dropped."""


class DalleParams(Params):
    model_config = ConfigDict(title=KEY)

    aspect_ratio: Literal["1:1", "3:2", "2:3"] = "1:1"
    style: Literal["vivid", "natural"] = "vivid"


SPECS = (
    ModelSpec(
        id="dall-e-3",
        label="DALL·E 3",
        family="dall-e",
        params_key=KEY,
        params=DalleParams,
        description="OpenAI DALL·E 3: vivid or natural styles (retired by OpenAI).",
        pricing=Pricing({"default": 21}, source="Apiframe docs: 21 credits"),
        capabilities=Capabilities(max_resolution="1792x1024"),
        routes=(Route("openai", "dall-e-3"),),
        retired_upstream=RETIRED,
        substitutes=(SUBSTITUTE,),
    ),
    ModelSpec(
        id="dall-e-2",
        label="DALL·E 2",
        family="dall-e",
        params_key=KEY,
        params=DalleParams,
        description="OpenAI DALL·E 2: square images only (retired by OpenAI).",
        pricing=Pricing(
            {"default": usd("0.02")},
            source="OpenAI list price US$0.02 per 1024x1024 image before retirement [unverified]",
        ),
        capabilities=Capabilities(max_resolution="1024x1024"),
        routes=(Route("openai", "dall-e-2", DALLE_2),),
        retired_upstream=RETIRED,
        substitutes=(SUBSTITUTE,),
    ),
)
