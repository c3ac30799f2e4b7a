"""A value no route of a model can send is a 400 at submit; a route that cannot send it is skipped.

Each case is a request the gateway used to accept and then fail upstream (refunded): the vendor's
enum has no counterpart for the value, or the route cannot make that many images.
"""

from __future__ import annotations

from typing import Any

import pytest

from imagegate.catalog import ModelSpec, build_catalog
from imagegate.errors import ValidationFailed
from imagegate.providers.replicate import build_input
from imagegate.types import Route

CATALOG = build_catalog()


def _spec(model_id: str) -> ModelSpec:
    spec = CATALOG.get(model_id)
    assert spec is not None
    return spec


def _route(model_id: str, provider: str) -> Route:
    return next(route for route in _spec(model_id).routes if route.provider == provider)


def _submit(model_id: str, params: dict[str, Any]) -> dict[str, list[str]]:
    spec = _spec(model_id)
    body = {"model": model_id, "prompt": "a lighthouse", spec.params_key: params}
    with pytest.raises(ValidationFailed) as caught:
        CATALOG.parse(body)
    return caught.value.details


def _accepted(model_id: str, params: dict[str, Any]) -> None:
    spec = _spec(model_id)
    CATALOG.parse({"model": model_id, "prompt": "a lighthouse", spec.params_key: params})


@pytest.mark.parametrize(
    ("model_id", "ratio", "allowed"),
    [
        ("flux-1.1-pro-ultra", "32:9", "between 21:9 and 9:21"),
        ("ideogram-v2", "21:9", "16:10"),
        ("ideogram-v3-turbo", "21:9", "4:5"),
    ],
)
def test_an_aspect_ratio_no_route_can_send_is_refused_naming_the_allowed_values(
    model_id: str, ratio: str, allowed: str
) -> None:
    details = _submit(model_id, {"aspect_ratio": ratio})
    key = _spec(model_id).params_key
    [message] = details[f"{key}.aspect_ratio"]
    assert allowed in message
    assert model_id in message


@pytest.mark.parametrize(
    ("model_id", "ratio"),
    [("flux-1.1-pro-ultra", "21:9"), ("flux-1.1-pro-ultra", "7:5"), ("ideogram-v3-turbo", "4:5")],
)
def test_a_ratio_some_route_can_send_is_accepted(model_id: str, ratio: str) -> None:
    _accepted(model_id, {"aspect_ratio": ratio})


def test_a_ratio_only_bfl_takes_skips_the_aggregator_routes_of_ultra() -> None:
    refusing = [
        route.provider
        for route in _spec("flux-1.1-pro-ultra").routes
        if route.inputs is not None and route.inputs.refusals({"aspect_ratio": "7:5"})
    ]
    assert refusing == ["replicate", "fal"]


def test_ideogram_3_tiers_on_ideogram_take_the_v3_only_ratios_that_legacy_models_lack() -> None:
    v3 = _route("ideogram-v3-turbo", "ideogram")
    legacy = _route("ideogram-v2", "ideogram")
    assert v3.inputs is not None and legacy.inputs is not None
    assert v3.inputs.refusals({"aspect_ratio": "4:5"}) == {}
    assert "aspect_ratio" in legacy.inputs.refusals({"aspect_ratio": "4:5"})


def test_qwen_image_with_several_images_passes_over_the_one_image_replicate_route() -> None:
    _accepted("qwen-image", {"num_images": 2})
    spec = _spec("qwen-image")
    takes = {
        route.provider: not (route.inputs and route.inputs.refusals({"num_images": 2}, outputs=2))
        for route in spec.routes
    }
    assert takes == {"dashscope": True, "replicate": False, "fal": True}


def test_seedream_5_on_replicate_is_sent_jpeg_for_jpg() -> None:
    for model_id in ("seedream-5-lite", "seedream-5-pro"):
        route = _route(model_id, "replicate")
        sent = build_input(route, "a fox", {"output_format": "jpg"})
        assert sent["output_format"] == "jpeg"


def test_legacy_ideogram_inpainting_goes_only_to_the_models_ideograms_edit_serves() -> None:
    params = {"image": "https://img.example/in.png", "mask": "https://img.example/mask.png"}
    for model_id in ("ideogram-v2", "ideogram-v2-turbo"):
        inputs = _route(model_id, "ideogram").inputs
        assert inputs is not None and inputs.refusals(params) == {}
    for model_id in ("ideogram-v2a", "ideogram-v2a-turbo"):
        inputs = _route(model_id, "ideogram").inputs
        assert inputs is not None and "mask" in inputs.refusals(params)
        _accepted(model_id, params)  # Replicate's model inpaints


@pytest.mark.parametrize(
    "model_id", ["imagen-3", "imagen-3-fast", "imagen-4", "imagen-4-ultra", "imagen-4-fast"]
)
def test_imagen_leads_with_a_live_route_not_a_retired_aggregator_slug(model_id: str) -> None:
    spec = _spec(model_id)
    assert spec.routes == ()
    assert [str(route) for route in spec.substitutes] == ["gemini:gemini-2.5-flash-image"]
    assert {route.provider for route in spec.retired_routes} <= {"replicate", "fal"}


def test_an_operator_route_to_a_retired_imagen_slug_keeps_its_input_table() -> None:
    spec = _spec("imagen-4")
    resolved = spec.resolve(Route("replicate", "google/imagen-4"))
    assert resolved.inputs is not None
    assert "aspect_ratio" in resolved.inputs.names


def _allowed(message: str, model_id: str) -> list[str]:
    """The values a ``must be one of …`` message names."""
    assert message.startswith("must be one of ") and message.endswith(f" for {model_id}")
    return message.removeprefix("must be one of ").removesuffix(f" for {model_id}").split(", ")


@pytest.mark.parametrize(
    ("model_id", "resolution", "listed"),
    [
        ("ideogram-v3-turbo", "1000x1000", "1024x1024"),
        ("ideogram-v3-turbo", "720x1280", "1024x1024"),  # legacy only: not in ResolutionV3
        ("ideogram-v2", "800x1280", "720x1280"),  # ResolutionV3 only: not in Resolution
        ("ideogram-v4-balanced", "1024x1024", "2048x2048"),
    ],
)
def test_a_resolution_no_route_can_send_is_refused_naming_the_allowed_values(
    model_id: str, resolution: str, listed: str
) -> None:
    [message] = _submit(model_id, {"resolution": resolution})["ideogramParams.resolution"]
    allowed = _allowed(message, model_id)
    assert listed in allowed
    assert resolution not in allowed


@pytest.mark.parametrize(
    ("model_id", "resolution"),
    [("ideogram-v3-turbo", "1536x640"), ("ideogram-v2", "720x1280"), ("ideogram-v2", "None")],
)
def test_a_resolution_the_vendor_lists_is_accepted(model_id: str, resolution: str) -> None:
    _accepted(model_id, {"resolution": resolution})


def test_a_nano_banana_ratio_no_route_lists_names_every_routes_ratios() -> None:
    [message] = _submit("nano-banana", {"aspect_ratio": "7:3"})["nanoBananaParams.aspect_ratio"]
    allowed = _allowed(message, "nano-banana")
    assert {"1:1", "21:9", "4:5", "9:21", "match_input_image"} <= set(allowed)
    assert "1:4" not in allowed  # gemini-3.1-flash-image's extreme ratios are Nano Banana 2's
    _accepted("nano-banana-2", {"aspect_ratio": "1:4"})


@pytest.mark.parametrize("model_id", ["seedream-3", "seedream-4", "seedream-5-pro"])
def test_ark_takes_the_size_texts_it_can_build_a_size_from_and_passes_over_others(
    model_id: str,
) -> None:
    inputs = _route(model_id, "ark").inputs
    assert inputs is not None
    for taken in ("1K", "2k", "4K", "regular", "big", "2048x1536", "2048 × 1536", "custom"):
        assert inputs.refusals({"resolution": taken}) == {}, taken
        assert inputs.refusals({"size": taken}) == {}, taken
    for other in ("1MP", "huge", "2048"):
        assert list(inputs.refusals({"resolution": other})) == ["resolution"], other
        assert list(inputs.refusals({"size": other})) == ["size"], other
