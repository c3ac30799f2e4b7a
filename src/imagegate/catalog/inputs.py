"""Building blocks for the per-route input tables the family modules declare.

A route whose vendor serves many models through one generic API (fal, Replicate) needs to know,
per model, which of our params it sends and under which names; DashScope needs the call shape.
Those tables are model facts, so each family module declares them on its own routes
(``Route("fal", "fal-ai/flux-2-pro", FLUX_2_FAL)``) and the adapter reads them from the route.
Conversions are named here and implemented by the adapter (``"jpeg"``: fal spells ``jpg`` so).
"""

from __future__ import annotations

from collections.abc import Mapping

from imagegate.types import RouteInputs

__all__ = ["FAL_SIZES", "fal", "replicate", "same"]

FAL_SIZES: Mapping[str, str] = {
    "1:1": "square_hd",
    "4:3": "landscape_4_3",
    "3:4": "portrait_4_3",
    "16:9": "landscape_16_9",
    "9:16": "portrait_16_9",
}
"""Our aspect ratios → fal's named ``image_size`` values."""


def same(*names: str) -> dict[str, str]:
    """Params sent under their own names."""
    return {name: name for name in names}


def fal(
    names: Mapping[str, str],
    convert: Mapping[str, str] | None = None,
    *,
    sizes: Mapping[str, str] | None = None,
    edit: str | None = None,
    defaults: Mapping[str, str] | None = None,
    values: Mapping[str, tuple[str, ...]] | None = None,
) -> RouteInputs:
    """A fal endpoint's inputs; fal endpoints take the image count as ``num_images``.

    Conversions by fal input name: ``jpeg``, ``magic`` (``Off`` → false), ``upper``, ``lower``,
    ``list`` (one URL → a list), ``text``, ``seedream_size``, ``nano_resolution``. ``values``
    is ``RouteInputs.values``: the values of our params the endpoint's enums can take.
    """
    return RouteInputs(
        names=names,
        convert=convert or {},
        sizes=sizes,
        edit=edit,
        count="num_images",
        defaults=defaults or {},
        values=values or {},
    )


def replicate(
    names: Mapping[str, str],
    convert: Mapping[str, str] | None = None,
    *,
    count: str | None = None,
    values: Mapping[str, tuple[str, ...]] | None = None,
) -> RouteInputs:
    """A Replicate model's inputs; ``count`` names its image-count input when one prediction can
    make several images (without it the route serves one-image jobs only, and the router passes
    it over for more). Conversions: ``jpg`` (``jpeg`` → ``jpg``), ``jpeg`` (``jpg`` → ``jpeg``),
    ``megapixels`` (``1MP`` → ``1 MP``), ``not_none`` (``acceleration`` other than ``none`` →
    ``go_fast`` true). ``values`` is ``RouteInputs.values``."""
    return RouteInputs(
        names=names,
        convert=convert or {},
        count=count,
        values=values or {},
        max_outputs=None if count is not None else 1,
    )
