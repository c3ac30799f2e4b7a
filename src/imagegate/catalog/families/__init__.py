"""One module per model family; ``all_specs`` gathers them in catalog order."""

from __future__ import annotations

from imagegate.catalog.families import gpt_image, midjourney
from imagegate.catalog.spec import ModelSpec

__all__ = ["all_specs"]

FAMILIES = (midjourney, gpt_image)


def all_specs() -> list[ModelSpec]:
    return [spec for family in FAMILIES for spec in family.SPECS]
