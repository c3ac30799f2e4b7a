"""One module per model family; ``all_specs`` gathers them in catalog order."""

from __future__ import annotations

from imagegate.catalog.families import (
    dalle,
    flux,
    gpt_image,
    grok,
    ideogram,
    imagen,
    kling,
    midjourney,
    nano_banana,
    qwen,
    reve,
    seedream,
    stable_diffusion,
    wan,
)
from imagegate.catalog.inputs import refuse_unnamed
from imagegate.catalog.spec import ModelSpec

__all__ = ["all_specs"]

FAMILIES = (
    midjourney,
    nano_banana,
    flux,
    seedream,
    ideogram,
    stable_diffusion,
    imagen,
    dalle,
    gpt_image,
    kling,
    qwen,
    wan,
    grok,
    reve,
)


def all_specs() -> list[ModelSpec]:
    """Every model; fal and Replicate routes refuse the params their tables leave unsent."""
    return [refuse_unnamed(spec) for family in FAMILIES for spec in family.SPECS]
