"""Midjourney (``midjourneyParams``): four images and a 2×2 grid per generation."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ConfigDict

from imagegate.catalog.fields import AspectRatio
from imagegate.catalog.params import Params
from imagegate.catalog.spec import Capabilities, ModelSpec, Pricing
from imagegate.types import Route

__all__ = ["ACTION_PRICES", "SPECS", "MidjourneyParams"]


class MidjourneyParams(Params):
    model_config = ConfigDict(title="midjourneyParams")

    aspect_ratio: AspectRatio = "1:1"


ACTION_PRICES: Mapping[str, int] = {
    "upsample": 4,
    "variation": 16,
    "inpaint": 16,
    "outpaint": 16,
    "pan": 16,
}
"""Credits per follow-up action (``POST /v2/images/midjourney/action``) for live keys; test keys
pay nothing. An upsample picks one image of a grid; the others draw a new generation."""

SPECS = (
    ModelSpec(
        id="midjourney",
        label="Midjourney",
        family="midjourney",
        params_key="midjourneyParams",
        params=MidjourneyParams,
        description="Midjourney's artistic generations: four images and a 2×2 grid per job.",
        pricing=Pricing({"default": 16}, source="Apiframe docs: 16 credits per generation"),
        capabilities=Capabilities(max_outputs=4),
        routes=(Route("midjourney", "midjourney"),),
        outputs=lambda _params: 4,
        grid=True,
    ),
)
