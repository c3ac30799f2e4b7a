"""Reve (``reveParams``): Reve's text-to-image ``create`` endpoint, one image per job."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict

from imagegate.catalog.inputs import fal, same
from imagegate.catalog.params import Params
from imagegate.catalog.pricing import usd
from imagegate.catalog.spec import ModelSpec, Pricing
from imagegate.types import Route, RouteInputs

__all__ = ["SPECS", "ReveParams"]

REVE_API = RouteInputs(refuses=("seed",))
"""Reve's ``create`` takes no seed (its SDK README lists every field): such a job runs on fal."""
REVE_FAL = fal(same("aspect_ratio", "output_format", "seed"), {"output_format": "jpeg"})


KEY = "reveParams"


class ReveParams(Params):
    model_config = ConfigDict(title=KEY)

    aspect_ratio: Literal["16:9", "9:16", "3:2", "2:3", "4:3", "3:4", "1:1"] | None = None
    seed: int | None = None
    version: str | None = None


SPECS = (
    ModelSpec(
        id="reve-create",
        label="Reve Create",
        family="reve",
        params_key=KEY,
        params=ReveParams,
        description="Reve Image: prompt-faithful text-to-image with strong aesthetics.",
        pricing=Pricing(
            {"default": usd("0.04")}, source="Reve API list price US$0.04/image [unverified]"
        ),
        routes=(
            Route("reve", "reve-create", REVE_API),
            Route("fal", "fal-ai/reve/text-to-image", REVE_FAL),
        ),
    ),
)
