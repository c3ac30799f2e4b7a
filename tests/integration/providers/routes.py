"""The catalog's routes, with the input tables the adapters read from them."""

from __future__ import annotations

from imagegate.catalog import build_catalog
from imagegate.types import Route

CATALOG = build_catalog()
_ROUTES = {
    (route.provider, route.upstream_model): route
    for spec in CATALOG
    for route in (*spec.routes, *spec.substitutes)
}
OPERATOR_ROUTES = {
    ("replicate", "openai/gpt-image-1.5"): "gpt-image-2",
    ("dashscope", "qwen-image-plus"): "qwen-image",
}
"""Upstream ids the tests call that the catalog does not list, with the model an operator would
route to them (``IMAGEGATE_ROUTES``)."""


def catalog_route(provider: str, upstream_model: str, *, model: str | None = None) -> Route:
    """The route the router hands an adapter for ``upstream_model`` on ``provider``.

    A catalog route is returned as declared; an operator's route takes the inputs of ``model``'s
    route on that provider (``ModelSpec.resolve``); a sub-path of a catalog endpoint
    (``…/edit``) or a pinned version of it (``…:version``) takes that endpoint's inputs.
    """
    model = model or OPERATOR_ROUTES.get((provider, upstream_model))
    spec = CATALOG.get(model) if model is not None else None
    if spec is not None:
        return spec.resolve(Route(provider, upstream_model))
    if (provider, upstream_model) in _ROUTES:
        return _ROUTES[provider, upstream_model]
    for (owner, upstream), route in _ROUTES.items():
        if owner == provider and upstream_model.startswith((upstream + "/", upstream + ":")):
            return Route(provider, upstream_model, route.inputs)
    return Route(provider, upstream_model)
