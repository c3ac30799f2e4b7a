"""Every catalog route to a table-driven vendor carries the inputs its adapter can read."""

from __future__ import annotations

from imagegate.catalog import build_catalog
from imagegate.providers import dashscope, fal, replicate
from imagegate.types import Route

CATALOG = build_catalog()
CONVERSIONS = {"fal": fal.CONVERSIONS, "replicate": replicate.CONVERSIONS}


def _routes(provider: str) -> list[tuple[str, Route]]:
    return [
        (spec.id, route)
        for spec in CATALOG
        for route in (*spec.routes, *spec.substitutes)
        if route.provider == provider
    ]


def test_every_fal_and_replicate_route_names_only_conversions_its_adapter_has() -> None:
    for provider, known in CONVERSIONS.items():
        assert _routes(provider)
        for model_id, route in _routes(provider):
            assert route.inputs is not None, f"{model_id}: {route} has no inputs"
            assert route.inputs.names, f"{model_id}: {route} sends no params"
            unknown = set(route.inputs.convert.values()) - set(known)
            assert not unknown, f"{model_id}: {route} names unknown conversions {unknown}"
            converted = set(route.inputs.convert) - set(route.inputs.names.values())
            assert not converted, f"{model_id}: {route} converts inputs it never sends: {converted}"


def test_every_fal_route_sends_the_image_count_and_edits_only_with_a_named_param() -> None:
    for model_id, route in _routes("fal"):
        assert route.inputs is not None
        assert route.inputs.count == "num_images", model_id
        if route.inputs.edit is not None:
            assert route.inputs.edit in route.inputs.names, model_id


def test_every_dashscope_route_declares_a_call_shape_its_adapter_knows() -> None:
    routes = _routes("dashscope")
    assert routes
    for model_id, route in routes:
        assert route.inputs is not None and route.inputs.shape is not None, model_id
        assert dashscope.mode_for(route.upstream_model, {}, route) == route.inputs.shape


def test_the_modes_option_overrides_the_declared_shape_and_unknown_models_are_multimodal() -> None:
    (_, route), *_ = [(m, r) for m, r in _routes("dashscope") if r.upstream_model == "qwen-image"]
    assert dashscope.mode_for("qwen-image", {}, route) == "synthesis"
    assert dashscope.mode_for("qwen-image", {"qwen-image": "multimodal"}, route) == "multimodal"
    assert dashscope.mode_for("qwen-image-edit-plus", {}, route) == "multimodal"


def test_a_route_is_named_by_provider_and_upstream_id_whatever_its_inputs() -> None:
    _, declared = _routes("fal")[0]
    assert Route(declared.provider, declared.upstream_model) == declared
    assert str(declared) == f"fal:{declared.upstream_model}"
