"""Building blocks for the per-route input tables the family modules declare.

A route whose vendor serves many models through one generic API (fal, Replicate) needs to know,
per model, which of our params it sends and under which names; DashScope needs the call shape.
Those tables are model facts, so each family module declares them on its own routes
(``Route("fal", "fal-ai/flux-2-pro", FLUX_2_FAL)``) and the adapter reads them from the route.
Conversions are named here and implemented by the adapter (``"jpeg"``: fal spells ``jpg`` so).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from imagegate.catalog.spec import ModelSpec
from imagegate.types import Route, RouteInputs

__all__ = ["FAL_SIZES", "NAMED_ONLY", "fal", "refuse_unnamed", "replicate", "same"]

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


NAMED_ONLY = frozenset({"fal", "replicate"})
"""Providers whose adapter sends a param only when the route's table names it."""
COUNTS = frozenset({"n", "num_images", "number_of_images"})
"""Params that set a job's number of images (``ModelSpec.outputs``): the route's ``count`` input
or its one-image limit carries them, not ``names``."""


def _unnamed(spec: ModelSpec, route: Route) -> Route:
    inputs = route.inputs
    if route.provider not in NAMED_ONLY or inputs is None:
        return route
    sent = set(inputs.names) | COUNTS | ({inputs.edit} if inputs.edit else set())
    if inputs.sizes is not None:  # a named size from the ratio, or {width, height} from both
        sent |= {"aspect_ratio", "width", "height"}
    if route.provider == "replicate" and "aspect_ratio" in inputs.names:
        sent.add("image_size")  # a fal-style named size, sent as its ratio
    fields = spec.params.model_fields
    unnamed = [name for name in fields if name not in sent and name not in inputs.refuses]
    # A param with a default is always stored: the route serves that value, refuses any other.
    defaults: dict[str, tuple[Any, ...]] = {
        name: (fields[name].default,)
        for name in unnamed
        if fields[name].default is not None and name not in inputs.values
    }
    if (
        inputs.sizes is not None
        and "aspect_ratio" in fields
        and "aspect_ratio" not in inputs.values
    ):
        defaults["aspect_ratio"] = tuple(inputs.sizes)  # a ratio with no named size is not sent
    refuses = (*inputs.refuses, *(name for name in unnamed if fields[name].default is None))
    return replace(
        route, inputs=replace(inputs, refuses=refuses, values={**inputs.values, **defaults})
    )


def refuse_unnamed(spec: ModelSpec) -> ModelSpec:
    """``spec`` with each fal and Replicate route refusing the params its table does not name.

    Those adapters send what ``names`` lists and nothing else, so a param left out of a route's
    table would be dropped on the way; refusing it instead routes such a job to a route that
    sends it, or makes it a 400 naming the field when none does. Likewise a route that sends
    ``aspect_ratio`` as a named size (``sizes``) takes only the ratios that have one.
    """
    return replace(
        spec,
        routes=tuple(_unnamed(spec, route) for route in spec.routes),
        substitutes=tuple(_unnamed(spec, route) for route in spec.substitutes),
        retired_routes=tuple(_unnamed(spec, route) for route in spec.retired_routes),
    )
