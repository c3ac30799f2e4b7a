"""The catalog against Apiframe's published contract.

``apiframe_generate_request.json`` is ``components.schemas.GenerateImageRequest`` copied verbatim
from Apiframe's OpenAPI document: a ``oneOf`` with one request schema per model id. For every id we
serve, the params object we publish must have the same fields, types, enums, bounds, list limits
and required fields, and the request the same fields, required fields and prompt length. The other
tests pin behaviour a client sees: prices, a params block of the wrong family, per-model rules.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from imagegate.catalog import Catalog, build_catalog
from imagegate.catalog.pricing import cny, usd
from imagegate.errors import ValidationFailed

CONTRACT = json.loads(
    (Path(__file__).with_name("apiframe_generate_request.json")).read_text(encoding="utf-8")
)
DOCUMENT: dict[str, dict[str, Any]] = {
    variant["properties"]["model"]["enum"][0]: variant
    for variant in CONTRACT["GenerateImageRequest"]["oneOf"]
}

MODELS = [
    "midjourney",
    "nano-banana",
    "nano-banana-pro",
    "nano-banana-2",
    "nano-banana-2-lite",
    "flux-1.1-pro",
    "flux-1.1-pro-ultra",
    "flux-2-pro",
    "flux-2-dev",
    "flux-2-flex",
    "flux-2-max",
    "seedream-3",
    "seedream-3.1",
    "seedream-4",
    "seedream-4.5",
    "seedream-5-lite",
    "seedream-5-pro",
    "ideogram-v2",
    "ideogram-v2-turbo",
    "ideogram-v2a",
    "ideogram-v2a-turbo",
    "ideogram-v3-balanced",
    "ideogram-v3-turbo",
    "ideogram-v3-quality",
    "ideogram-v4-balanced",
    "ideogram-v4-turbo",
    "ideogram-v4-quality",
    "ideogram-character",
    "stable-diffusion-3.5-large",
    "stable-diffusion-3.5-large-turbo",
    "stable-diffusion-3.5-medium",
    "stable-diffusion-3",
    "imagen-3",
    "imagen-3-fast",
    "imagen-4",
    "imagen-4-ultra",
    "imagen-4-fast",
    "dall-e-3",
    "dall-e-2",
    "gpt-image-1.5",
    "gpt-image-2",
    "kling-image",
    "qwen-image",
    "qwen-image-2",
    "qwen-image-2-pro",
    "wan-image-2.6",
    "wan-image-2.7",
    "wan-image-2.7-pro",
    "grok-imagine-image",
    "reve-create",
]

URL = "https://example.com/in.png"
CATALOG = build_catalog()


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _facts(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """What the contract pins about one schema node, in a form both documents share.

    ``anyOf: [X, {"type": "null"}]`` and ``type: [X, "null"]`` both mean "X or null". Enums are
    compared as sets: their order carries no meaning (and Python's ``Literal`` cache may reorder
    two literals with the same values).
    """
    schema = _resolve(schema, defs)
    types: set[str] = set()
    branches = schema.get("anyOf", [schema])
    body: dict[str, Any] = {}
    for branch in branches:
        branch = _resolve(branch, defs)
        kind = branch.get("type")
        types.update([kind] if isinstance(kind, str) else kind or [])
        if branch.get("type") != "null":
            body = branch
    facts: dict[str, Any] = {"type": sorted(types)}
    if "enum" in body:
        facts["enum"] = sorted(body["enum"], key=str)
    for key in ("minimum", "maximum", "maxItems", "minItems", "maxLength", "minLength"):
        if key in body:
            facts[key] = body[key]
    for key in ("pattern", "format", "additionalProperties"):
        if key in body:
            facts[key] = body[key]
    if "items" in body:
        facts["items"] = _facts(body["items"], defs)
    if "properties" in body:
        facts["properties"] = {
            name: _facts(prop, defs) for name, prop in body["properties"].items()
        }
        facts["required"] = sorted(body.get("required", []))
    return facts


def _ours(model_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = TypeAdapter(CATALOG.request_class(model_id)).json_schema()
    return schema, schema.get("$defs", {})


def test_the_catalog_has_every_published_model_but_flux_lora_in_document_order() -> None:
    assert [spec.id for spec in CATALOG] == MODELS
    assert [model for model in DOCUMENT if model != "flux-lora"] == MODELS


@pytest.mark.parametrize("model_id", MODELS)
def test_params_schema_matches_the_published_one(model_id: str) -> None:
    spec = CATALOG.get(model_id)
    assert spec is not None
    theirs = DOCUMENT[model_id]
    assert [key for key in theirs["properties"] if key.endswith("Params")] == [spec.params_key]
    ours, defs = _ours(model_id)
    mine = _facts(ours["properties"][spec.params_key], defs)
    published = _facts(theirs["properties"][spec.params_key], {})
    # Optional params objects are ``null``-able on our side only at the request level.
    published["type"] = mine["type"] if spec.params_key not in theirs["required"] else ["object"]
    assert mine == published


@pytest.mark.parametrize("model_id", MODELS)
def test_request_fields_and_prompt_limit_match(model_id: str) -> None:
    ours, _defs = _ours(model_id)
    theirs = DOCUMENT[model_id]
    assert set(ours["properties"]) == set(theirs["properties"])
    assert sorted(ours["required"]) == sorted(theirs["required"])
    assert ours["properties"]["model"]["const"] == theirs["properties"]["model"]["enum"][0]
    prompt, published = ours["properties"]["prompt"], theirs["properties"]["prompt"]
    assert (prompt["minLength"], prompt["maxLength"]) == (
        published["minLength"],
        published["maxLength"],
    )


def _price(body: dict[str, Any], catalog: Catalog = CATALOG) -> int:
    request = catalog.parse({"prompt": "a red fox", **body})
    return catalog.price(request.spec, request.params)


@pytest.mark.parametrize(
    ("body", "credits"),
    [
        ({"model": "midjourney"}, 16),
        ({"model": "imagen-4"}, 7),
        ({"model": "dall-e-3", "dalleParams": {"style": "natural"}}, 21),
        ({"model": "gpt-image-1.5"}, 24),
        ({"model": "gpt-image-1.5", "gptImageParams": {"quality": "low"}}, 4),
        ({"model": "gpt-image-1.5", "gptImageParams": {"quality": "medium"}}, 9),
        ({"model": "gpt-image-1.5", "gptImageParams": {"quality": "high"}}, 24),
        (
            {"model": "gpt-image-1.5", "gptImageParams": {"quality": "low", "number_of_images": 3}},
            12,
        ),
        ({"model": "kling-image"}, 2),
        ({"model": "kling-image", "klingImageParams": {"n": 4}}, 8),
        (
            {
                "model": "ideogram-character",
                "ideogramParams": {"character_reference_image": URL, "rendering_speed": "turbo"},
            },
            10,
        ),
        ({"model": "ideogram-character", "ideogramParams": {"character_reference_image": URL}}, 15),
        (
            {
                "model": "ideogram-character",
                "ideogramParams": {"character_reference_image": URL, "rendering_speed": "quality"},
            },
            20,
        ),
        ({"model": "seedream-4.5"}, 4),
        ({"model": "qwen-image", "qwenImageParams": {"num_images": 2}}, 2 * cny("0.25")),
        ({"model": "nano-banana-2-lite"}, 4),
        ({"model": "gpt-image-2"}, 22),
        ({"model": "gpt-image-2", "gptImage2Params": {"quality": "low"}}, 1),
        ({"model": "gpt-image-2", "gptImage2Params": {"quality": "medium"}}, 6),
        (
            {"model": "gpt-image-2", "gptImage2Params": {"quality": "high", "number_of_images": 2}},
            44,
        ),
        ({"model": "ideogram-v4-turbo"}, 3),
        ({"model": "ideogram-v4-balanced"}, 6),
        ({"model": "ideogram-v4-quality"}, 10),
        ({"model": "stable-diffusion-3.5-large"}, 7),
        ({"model": "stable-diffusion-3"}, 4),
    ],
)
def test_known_prices(body: dict[str, Any], credits: int) -> None:
    assert _price(body) == credits


def test_resolution_priced_models_charge_more_for_bigger_images() -> None:
    small = _price({"model": "flux-2-pro", "fluxParams": {"resolution": "1MP"}})
    default = _price({"model": "flux-2-pro"})
    large = _price({"model": "flux-2-pro", "fluxParams": {"resolution": "4MP"}})
    assert small == default < large
    pro_4k = _price({"model": "nano-banana-pro", "nanoBananaParams": {"resolution": "4K"}})
    assert pro_4k > _price({"model": "nano-banana-pro"})


def test_operator_overrides_replace_a_named_price_point() -> None:
    catalog = build_catalog({"gpt-image-1.5": {"low": 1}, "midjourney": {"default": 30}})
    body = {"model": "gpt-image-1.5", "gptImageParams": {"quality": "low", "number_of_images": 5}}
    assert _price(body, catalog) == 5
    assert _price({"model": "midjourney"}, catalog) == 30
    assert catalog.cost_range(catalog.get("gpt-image-1.5")) == (1, 240)  # type: ignore[arg-type]


def test_dollar_list_prices_round_up_to_whole_credits() -> None:
    assert (usd("0.039"), usd("0.04"), usd("0.0401"), usd("0.134")) == (4, 4, 5, 14)
    assert cny("0.5") == 7


@pytest.mark.parametrize("model_id", MODELS)
def test_every_price_is_a_positive_integer_with_a_source(model_id: str) -> None:
    spec = CATALOG.get(model_id)
    assert spec is not None
    assert spec.pricing.source
    low, high = CATALOG.cost_range(spec)
    assert isinstance(low, int) and isinstance(high, int) and 0 < low <= high
    request = CATALOG.parse(
        {"model": model_id, "prompt": "a red fox"}
        | (
            {"ideogramParams": {"character_reference_image": URL}}
            if model_id == "ideogram-character"
            else {}
        )
    )
    assert low <= CATALOG.price(spec, request.params) <= high


def _details(body: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(ValidationFailed) as caught:
        CATALOG.parse({"prompt": "a red fox", **body})
    return caught.value.details


def test_params_of_another_family_are_rejected_by_name() -> None:
    details = _details({"model": "midjourney", "fluxParams": {"seed": 1}})
    assert details == {"fluxParams": ["is not a parameter of midjourney (use midjourneyParams)"]}


def test_a_wrong_guess_at_the_params_key_names_the_right_one() -> None:
    details = _details({"model": "flux-2-pro", "flux2Params": {"seed": 1}, "colour": "red"})
    assert details == {
        "flux2Params": ["is not a parameter of flux-2-pro (use fluxParams)"],
        "colour": ["unknown field"],
    }


def test_flux_2_pro_resolution_is_an_enum_but_flux_2_dev_takes_any_string() -> None:
    details = _details({"model": "flux-2-pro", "fluxParams": {"resolution": "3MP"}})
    assert list(details) == ["fluxParams.resolution"]
    # Apiframe's schema takes any string, but no FLUX.2 [dev] upstream has a resolution input
    details = _details({"model": "flux-2-dev", "fluxParams": {"resolution": "3MP"}})
    assert details == {
        "fluxParams.resolution": ["is not supported by this model's upstream for flux-2-dev"]
    }


def test_ideogram_character_needs_its_reference_image() -> None:
    assert _details({"model": "ideogram-character"}) == {"ideogramParams": ["is required"]}
    details = _details({"model": "ideogram-character", "ideogramParams": {"seed": 3}})
    assert details == {"ideogramParams.character_reference_image": ["is required"]}


def test_character_reference_is_refused_by_other_ideogram_models() -> None:
    details = _details(
        {"model": "ideogram-v3-turbo", "ideogramParams": {"character_reference_image": URL}}
    )
    assert details == {
        "ideogramParams.character_reference_image": ["is not supported by ideogram-v3-turbo"]
    }


def test_inpainting_mask_needs_an_image() -> None:
    details = _details({"model": "ideogram-v2", "ideogramParams": {"mask": URL}})
    assert details == {"ideogramParams.image": ["is required when mask is set"]}


@pytest.mark.parametrize("model_id", ["wan-image-2.7", "wan-image-2.7-pro"])
def test_wan_2_7_accepts_5000_character_prompts(model_id: str) -> None:
    request = CATALOG.parse({"model": model_id, "prompt": "x" * 5000})
    assert len(request.prompt) == 5000
    details = _details({"model": model_id, "prompt": "x" * 5001})
    assert details == {"prompt": ["must be at most 5000 characters"]}


@pytest.mark.parametrize(
    "model_id", [m for m in MODELS if m not in ("wan-image-2.7", "wan-image-2.7-pro")]
)
def test_other_models_reject_2001_character_prompts(model_id: str) -> None:
    details = _details({"model": model_id, "prompt": "x" * 2001})
    assert details["prompt"] == ["must be at most 2000 characters"]


@pytest.mark.parametrize(
    ("model_id", "allowed"),
    [
        ("flux-1.1-pro", 0),
        ("flux-1.1-pro-ultra", 0),
        ("flux-2-dev", 5),
        ("flux-2-pro", 8),
        ("flux-2-max", 8),
        ("flux-2-flex", 10),
    ],
)
def test_flux_reference_image_limits(model_id: str, allowed: int) -> None:
    if allowed:
        CATALOG.parse(
            {"model": model_id, "prompt": "x", "fluxParams": {"input_images": [URL] * allowed}}
        )
    details = _details({"model": model_id, "fluxParams": {"input_images": [URL] * (allowed + 1)}})
    assert list(details) == ["fluxParams.input_images"]


@pytest.mark.parametrize("model_id", ["seedream-3", "seedream-3.1"])
def test_text_only_seedream_models_refuse_reference_images(model_id: str) -> None:
    details = _details({"model": model_id, "seedreamParams": {"image_input": [URL]}})
    assert details == {"seedreamParams.image_input": [f"is not supported by {model_id}"]}


def test_model_specific_ranges_narrow_the_family_schema() -> None:
    sides = {"width": 2048, "height": 1024}
    CATALOG.parse({"model": "flux-2-pro", "prompt": "x", "fluxParams": sides})
    details = _details({"model": "flux-1.1-pro", "fluxParams": sides})
    assert details == {"fluxParams.width": ["must be between 256 and 1440 for flux-1.1-pro"]}
    details = _details({"model": "seedream-4.5", "seedreamParams": {"size": "1K"}})
    assert list(details) == ["seedreamParams.size"]
    details = _details({"model": "nano-banana", "nanoBananaParams": {"resolution": "4K"}})
    assert list(details) == ["nanoBananaParams.resolution"]
    details = _details({"model": "imagen-4-fast", "imagenParams": {"image_size": "2K"}})
    assert list(details) == ["imagenParams.image_size"]


def test_width_and_height_come_together() -> None:
    for model, key in (("flux-2-pro", "fluxParams"), ("seedream-4", "seedreamParams")):
        details = _details({"model": model, key: {"width": 1024}})
        assert details == {f"{key}.height": ["is required when width is set"]}
        details = _details({"model": model, key: {"height": 1024}})
        assert details == {f"{key}.width": ["is required when height is set"]}


def test_qwen_image_edit_tasks_need_a_source_image() -> None:
    details = _details({"model": "qwen-image", "qwenImageParams": {"task_type": "image-edit"}})
    assert details == {"qwenImageParams.image_url": ["is required when task_type is image-edit"]}


def test_explicit_null_is_refused_unless_the_contract_allows_it() -> None:
    details = _details({"model": "flux-2-pro", "fluxParams": {"seed": None}})
    assert list(details) == ["fluxParams.seed"]
    request = CATALOG.parse(
        {"model": "gpt-image-1.5", "prompt": "x", "gptImageParams": {"input_images": None}}
    )
    assert request.params_dict["number_of_images"] == 1


def test_outputs_per_job() -> None:
    def outputs(body: dict[str, Any]) -> int:
        request = CATALOG.parse({"prompt": "x", **body})
        return request.spec.outputs(request.params)

    assert outputs({"model": "midjourney"}) == 4
    assert CATALOG.get("midjourney").grid  # type: ignore[union-attr]
    assert outputs({"model": "kling-image", "klingImageParams": {"n": 3}}) == 3
    assert outputs({"model": "qwen-image", "qwenImageParams": {"num_images": 4}}) == 4
    assert outputs({"model": "gpt-image-1.5", "gptImageParams": {"number_of_images": 7}}) == 7
    assert outputs({"model": "flux-2-pro"}) == 1


@pytest.mark.parametrize("model_id", MODELS)
def test_every_model_has_routes_of_known_providers(model_id: str) -> None:
    known = {"openai", "gemini", "xai", "reve", "ideogram", "ark", "bfl", "dashscope", "kling"}
    known |= {"midjourney", "replicate", "fal"}
    spec = CATALOG.get(model_id)
    assert spec is not None and (spec.routes or spec.substitutes)
    assert {route.provider for route in (*spec.routes, *spec.substitutes)} <= known
    retired = spec.id.startswith(("dall-e-", "imagen-"))
    assert (spec.retired_upstream is not None) == retired


def test_newer_models_keep_their_upstream_limits() -> None:
    details = _details({"model": "nano-banana-2-lite", "nanoBananaParams": {"resolution": "2K"}})
    assert details == {"nanoBananaParams.resolution": ["must be one of 1K for nano-banana-2-lite"]}
    CATALOG.parse(
        {"model": "seedream-5-pro", "prompt": "x", "seedreamParams": {"image_input": [URL] * 10}}
    )
    details = _details({"model": "seedream-5-pro", "seedreamParams": {"image_input": [URL] * 11}})
    assert details == {
        "seedreamParams.image_input": ["must have at most 10 items for seedream-5-pro"]
    }
    details = _details(
        {"model": "ideogram-v4-quality", "ideogramParams": {"rendering_speed": "turbo"}}
    )
    assert details == {
        "ideogramParams.rendering_speed": ["is not supported by ideogram-v4-quality"]
    }


@pytest.mark.parametrize("model_id", ["ideogram-v4-balanced", "ideogram-v4-turbo"])
def test_ideogram_4_refuses_input_images_its_upstreams_cannot_take(model_id: str) -> None:
    details = _details({"model": model_id, "ideogramParams": {"style_reference_images": [URL]}})
    assert details == {"ideogramParams.style_reference_images": [f"is not supported by {model_id}"]}
    details = _details({"model": model_id, "ideogramParams": {"image": URL, "mask": URL}})
    assert details == {
        "ideogramParams.image": [f"is not supported by {model_id}"],
        "ideogramParams.mask": [f"is not supported by {model_id}"],
    }
    assert not CATALOG.get(model_id).capabilities.image_input  # type: ignore[union-attr]
    CATALOG.parse({"model": model_id, "prompt": "x", "ideogramParams": {"aspect_ratio": "16:9"}})


def test_gpt_image_2_has_its_own_params_object() -> None:
    details = _details({"model": "gpt-image-2", "gptImageParams": {"quality": "low"}})
    assert details == {
        "gptImageParams": ["is not a parameter of gpt-image-2 (use gptImage2Params)"]
    }
    details = _details({"model": "gpt-image-2", "gptImage2Params": {"background": "transparent"}})
    assert list(details) == ["gptImage2Params.background"]
    details = _details({"model": "gpt-image-2", "gptImage2Params": {"input_fidelity": "high"}})
    assert list(details) == ["gptImage2Params.input_fidelity"]
    request = CATALOG.parse(
        {"model": "gpt-image-2", "prompt": "x", "gptImage2Params": {"input_images": None}}
    )
    assert request.params_dict["moderation"] == "auto"
    assert request.spec.outputs(request.params) == 1


def test_only_the_balanced_ideogram_4_tier_routes_to_ideogram_itself() -> None:
    # Ideogram's 4.0 endpoint has no rendering speed: a turbo or quality job sent there would be
    # rendered (and billed by Ideogram) at the default tier.
    providers = {
        model_id: [route.provider for route in CATALOG.get(model_id).routes]  # type: ignore[union-attr]
        for model_id in ("ideogram-v4-balanced", "ideogram-v4-turbo", "ideogram-v4-quality")
    }
    assert providers == {
        "ideogram-v4-balanced": ["ideogram", "replicate"],
        "ideogram-v4-turbo": ["replicate"],
        "ideogram-v4-quality": ["replicate"],
    }


@pytest.mark.parametrize(
    ("model", "key", "params", "path", "message"),
    [
        ("ideogram-v3-turbo", "ideogramParams", {"image": URL, "mask": URL, "aspect_ratio": "16:9"},
         "aspect_ratio", "is not supported together with mask"),
        ("ideogram-v2", "ideogramParams", {"image": URL, "mask": URL, "negative_prompt": "fog"},
         "negative_prompt", "is not supported together with mask"),
        ("gpt-image-2", "gptImage2Params", {"input_images": [URL], "moderation": "low"},
         "moderation", "is not supported together with input_images (edits)"),
        ("kling-image", "klingImageParams", {"image": URL, "negative_prompt": "fog"},
         "negative_prompt", "is not supported together with image"),
        ("kling-image", "klingImageParams", {"image_fidelity": 0.5}, "image", "is required"),
        ("qwen-image", "qwenImageParams", {"task_type": "text-to-image", "image_url": URL},
         "image_url", "is not used by task_type text-to-image"),
        ("gpt-image-1.5", "gptImageParams", {"input_fidelity": "high"}, "input_fidelity",
         "applies to edits only"),
    ],
)  # fmt: skip
def test_a_param_the_request_it_rides_on_cannot_carry_is_refused(
    model: str, key: str, params: dict[str, object], path: str, message: str
) -> None:
    details = _details({"model": model, key: params})
    [found] = details[f"{key}.{path}"]
    assert found.startswith(message), details
