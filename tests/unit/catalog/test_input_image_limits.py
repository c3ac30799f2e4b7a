"""Every model's advertised ``maxInputImages`` is the number of input images its params accept.

An input image is any params field whose JSON schema is a URI (``format: uri``) or a list of them
(``input_images``, ``image_input``, ``image``, ``style_reference_images`` …), except an inpainting
``mask``, which goes with its image and is tried both present and absent. For each model the
request with exactly the advertised number of images (spread over its fields in some way) must
validate, and every request with one image more must be refused.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from imagegate.catalog import ModelSpec, build_catalog
from imagegate.errors import ValidationFailed

CATALOG = build_catalog()
URL = "https://images.example.com/in-{}.png"
MASK = "mask"


def _image_fields(spec: ModelSpec) -> dict[str, bool]:
    """Params field → whether it holds a list of images (else one image)."""
    schema = spec.params.model_json_schema()
    fields: dict[str, bool] = {}
    for name, prop in schema.get("properties", {}).items():
        if name == MASK:
            continue
        variants = prop.get("anyOf", [prop])
        for variant in variants:
            if variant.get("format") == "uri":
                fields[name] = False
            elif variant.get("type") == "array" and variant.get("items", {}).get("format") == "uri":
                fields[name] = True
    return fields


def _spreads(fields: dict[str, bool], total: int) -> Iterator[dict[str, int]]:
    """Every way to put ``total`` images into the fields (one at most in a single-image field)."""
    names = sorted(fields)
    ranges = [range(total + 1) if fields[name] else range(2) for name in names]
    for counts in itertools.product(*ranges):
        if sum(counts) == total:
            yield dict(zip(names, counts, strict=True))


def _body(
    spec: ModelSpec, spread: dict[str, int], fields: dict[str, bool], *, mask: bool
) -> dict[str, Any]:
    params: dict[str, Any] = {MASK: "https://images.example.com/mask.png"} if mask else {}
    number = itertools.count()
    for name, count in spread.items():
        if count == 0:
            continue
        urls = [URL.format(next(number)) for _ in range(count)]
        params[name] = urls if fields[name] else urls[0]
    return {"model": spec.id, "prompt": "a lighthouse", spec.params_key: params}


def _accepted(spec: ModelSpec, spread: dict[str, int], fields: dict[str, bool]) -> bool:
    masks = (False, True) if MASK in spec.params.model_fields else (False,)
    for mask in masks:
        try:
            CATALOG.parse(_body(spec, spread, fields, mask=mask))
        except ValidationFailed:
            continue
        return True
    return False


@pytest.mark.parametrize("spec", list(CATALOG), ids=lambda spec: spec.id)
def test_the_advertised_number_of_input_images_is_accepted_and_one_more_is_not(
    spec: ModelSpec,
) -> None:
    advertised = CATALOG.public(spec)["capabilities"]["maxInputImages"]
    assert advertised == spec.capabilities.max_input_images
    fields = _image_fields(spec)
    if advertised > 0:
        assert any(_accepted(spec, s, fields) for s in _spreads(fields, advertised)), (
            f"{spec.id}: no request with {advertised} input images validates"
        )
    accepted_more = [s for s in _spreads(fields, advertised + 1) if _accepted(spec, s, fields)]
    assert not accepted_more, f"{spec.id} advertises {advertised} but accepts {accepted_more[0]}"
