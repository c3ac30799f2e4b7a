"""Midjourney (``midjourneyParams``): four images and a 2×2 grid per generation."""

from __future__ import annotations

from pydantic import ConfigDict

from imagegate.catalog.fields import AspectRatio
from imagegate.catalog.params import Params
from imagegate.catalog.spec import Capabilities, ModelSpec, Pricing
from imagegate.types import Route

__all__ = ["SPECS", "MidjourneyParams"]


class MidjourneyParams(Params):
    model_config = ConfigDict(title="midjourneyParams")

    aspect_ratio: AspectRatio = "1:1"


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
