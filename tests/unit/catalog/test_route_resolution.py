"""An operator's route (``IMAGEGATE_ROUTES``) is served with the model's own input table."""

from __future__ import annotations

from imagegate.catalog import build_catalog
from imagegate.types import Route

CATALOG = build_catalog()


def _spec(model_id: str):  # type: ignore[no-untyped-def]
    spec = CATALOG.get(model_id)
    assert spec is not None
    return spec


def test_an_operator_route_the_catalog_lists_gets_the_catalog_inputs() -> None:
    spec = _spec("flux-2-pro")
    declared = next(route for route in spec.routes if route.provider == "fal")
    resolved = spec.resolve(Route("fal", declared.upstream_model))
    assert resolved.inputs is declared.inputs


def test_an_operator_route_to_another_id_of_the_vendor_takes_the_models_inputs() -> None:
    spec = _spec("flux-2-pro")
    declared = next(route for route in spec.routes if route.provider == "replicate")
    resolved = spec.resolve(Route("replicate", "black-forest-labs/flux-2-pro:0123abcd"))
    assert resolved.upstream_model == "black-forest-labs/flux-2-pro:0123abcd"
    assert resolved.inputs is declared.inputs


def test_a_route_to_a_provider_the_model_never_names_stays_bare() -> None:
    assert _spec("flux-2-pro").resolve(Route("sandbox", "flux-2-pro")).inputs is None


def test_the_ideogram_3_tiers_send_their_tier_through_the_shared_fal_endpoint() -> None:
    speeds = {}
    for tier in ("turbo", "balanced", "quality"):
        route = next(r for r in _spec(f"ideogram-v3-{tier}").routes if r.provider == "fal")
        assert route.inputs is not None
        speeds[tier] = route.inputs.defaults["rendering_speed"]
    assert speeds == {"turbo": "TURBO", "balanced": "BALANCED", "quality": "QUALITY"}
