"""Every model × route × value, walked against the vendor's own enum.

For each catalog route to a vendor whose description is in the references (BFL, Ideogram, OpenAI,
xAI, Gemini, Reve, DashScope), every value the vendor's enum has is taken by the route's table
and reaches the vendor in the enum's spelling; every value the table takes is in the enum; and a
value outside it is refused, so it is a 400 at submit or routed elsewhere. The enums come from
``vendor/enums.json``, which names the file and commit each was copied from. Routes to vendors
with no published description are listed in ``UNCHECKED`` with the reason, and a route to a
provider in neither list fails here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import httpx2
import pytest

from imagegate.catalog import ModelSpec, build_catalog
from imagegate.catalog.families import nano_banana
from imagegate.catalog.families.ideogram import (
    UNSET,
    V4_REPLICATE_RATIOS,
    V4_REPLICATE_RESOLUTIONS,
    IdeogramParams,
)
from imagegate.providers import dashscope, gemini, ideogram, openai, replicate, reve
from imagegate.providers.port import GenerationRequest, ProviderContext
from imagegate.types import FetchedInput, Route

ENUMS: dict[str, Any] = json.loads((Path(__file__).parent / "vendor" / "enums.json").read_text())
CATALOG = build_catalog()


def _routes(provider: str) -> Iterator[tuple[ModelSpec, Route]]:
    for spec in CATALOG:
        for route in (*spec.routes, *spec.substitutes):
            if route.provider == provider:
                yield spec, route


def _ideogram_kind(route: Route) -> str:
    if route.upstream_model in ideogram.LEGACY_MODELS:
        return "legacy"
    return "v4" if route.upstream_model == ideogram.V4_MODEL else "v3"


def _ideogram_ratios(kind: str) -> list[str]:
    if kind == "legacy":
        return [
            v.removeprefix("ASPECT_").replace("_", ":") for v in ENUMS["ideogram"]["AspectRatio"]
        ]
    return [v.replace("x", ":") for v in ENUMS["ideogram"]["AspectRatioV3"]]


IDEOGRAM_CASES = [
    pytest.param(spec.id, route, ratio, id=f"{spec.id}-{route.upstream_model}-{ratio}")
    for spec, route in _routes("ideogram")
    if _ideogram_kind(route) != "v4"
    for ratio in _ideogram_ratios(_ideogram_kind(route))
]


async def _no_fetch(url: str) -> FetchedInput:
    raise AssertionError(f"no input image expected, asked for {url}")


def _request(spec_id: str, route: Route, params: dict[str, Any]) -> GenerationRequest:
    return GenerationRequest(
        job_id="job-1", model=spec_id, route=route, prompt="a fox", params=params, outputs=1
    )


@pytest.mark.parametrize(("model_id", "route", "ratio"), IDEOGRAM_CASES)
async def test_every_ideogram_ratio_is_taken_and_sent_in_the_vendors_spelling(
    model_id: str, route: Route, ratio: str
) -> None:
    assert route.inputs is not None
    assert route.inputs.refusals({"aspect_ratio": ratio}) == {}
    async with httpx2.AsyncClient() as client:
        adapter = ideogram.IdeogramAdapter(
            client, ProviderContext(fetch_input=_no_fetch), models={}
        )
        call = await adapter.call_for(_request(model_id, route, {"aspect_ratio": ratio}))
    if call.json is not None:
        sent = call.json["image_request"]["aspect_ratio"]
        assert sent in ENUMS["ideogram"]["AspectRatio"]
    else:
        assert call.files is not None
        [sent] = [value for name, (_, value, _) in call.files if name == "aspect_ratio"]
        assert sent in ENUMS["ideogram"]["AspectRatioV3"]


@pytest.mark.parametrize(
    ("model_id", "route"),
    [pytest.param(spec.id, route, id=spec.id) for spec, route in _routes("ideogram")],
)
def test_every_ideogram_route_table_is_exactly_the_vendor_enum(model_id: str, route: Route) -> None:
    kind = _ideogram_kind(route)
    assert route.upstream_model in ENUMS["ideogram"]["ModelEnum"] or kind != "legacy"
    assert route.inputs is not None
    if kind == "v4":  # GenerateImageRequestV4 takes no shape or style: such a job goes elsewhere
        sent = set(ENUMS["ideogram"]["GenerateImageRequestV4"])
        taken = set(IdeogramParams.model_fields) - set(route.inputs.refuses)
        assert sent & set(route.inputs.refuses) == set()
        assert {"resolution", "aspect_ratio"} <= set(route.inputs.refuses)
        # what is neither refused here nor sent is refused by the model's own rules
        assert taken - sent <= {"rendering_speed", "image", "mask", "style_reference_images",
                                "character_reference_image"}  # fmt: skip
        assert not route.inputs.values
        return
    table = set(route.inputs.values["aspect_ratio"]) - {UNSET}
    assert table == set(_ideogram_ratios(kind)), model_id
    for outside in ("21:9", "9:21", "7:5"):
        assert "aspect_ratio" in route.inputs.refusals({"aspect_ratio": outside})
    resolutions = set(route.inputs.values["resolution"]) - {UNSET}
    assert resolutions == set(_ideogram_resolutions(kind)), model_id
    for outside in ("1000x1000", "2048x2048", "1024x1025"):
        assert "resolution" in route.inputs.refusals({"resolution": outside})


def _ideogram_resolutions(kind: str) -> list[str]:
    """The vendor's resolution enum in our spelling (``1024x1024``)."""
    if kind == "legacy":
        return [
            v.removeprefix("RESOLUTION_").replace("_", "x") for v in ENUMS["ideogram"]["Resolution"]
        ]
    return list(ENUMS["ideogram"]["ResolutionV3"])


@pytest.mark.parametrize(
    ("model_id", "route"),
    [
        pytest.param(spec.id, route, id=spec.id)
        for spec, route in _routes("ideogram")
        if _ideogram_kind(route) != "v4"
    ],
)
async def test_every_ideogram_resolution_is_taken_and_sent_in_the_vendors_spelling(
    model_id: str, route: Route
) -> None:
    kind = _ideogram_kind(route)
    assert route.inputs is not None
    async with httpx2.AsyncClient() as client:
        adapter = ideogram.IdeogramAdapter(
            client, ProviderContext(fetch_input=_no_fetch), models={}
        )
        for resolution in _ideogram_resolutions(kind):
            assert route.inputs.refusals({"resolution": resolution}) == {}, resolution
            call = await adapter.call_for(_request(model_id, route, {"resolution": resolution}))
            if call.json is not None:
                sent = call.json["image_request"]["resolution"]
                assert sent in ENUMS["ideogram"]["Resolution"], resolution
            else:
                assert call.files is not None
                [sent] = [value for name, (_, value, _) in call.files if name == "resolution"]
                assert sent in ENUMS["ideogram"]["ResolutionV3"], resolution


def test_ideogram_resolutions_reach_only_routes_that_send_them() -> None:
    """fal's Ideogram endpoints take a named size and drop ``resolution``; Replicate's relay
    Ideogram's own enums (its model pages list the same values)."""
    for spec in CATALOG:
        for route in spec.routes:
            if not route.upstream_model.startswith(("fal-ai/ideogram", "ideogram-ai/")):
                continue
            assert route.inputs is not None
            if route.provider == "fal":
                assert "resolution" in route.inputs.refuses, spec.id
            elif "v4" in route.upstream_model:
                table = set(route.inputs.values["resolution"]) - {UNSET}
                assert table == set(V4_REPLICATE_RESOLUTIONS), spec.id
            else:
                kind = "legacy" if "-v2" in route.upstream_model else "v3"
                table = set(route.inputs.values["resolution"]) - {UNSET}
                assert table == set(_ideogram_resolutions(kind)), spec.id


@pytest.mark.parametrize(("ratio", "resolution"), sorted(V4_REPLICATE_RATIOS.items()))
def test_an_ideogram_4_ratio_reaches_replicate_as_the_resolution_of_that_shape(
    ratio: str, resolution: str
) -> None:
    [route] = [r for _s, r in _routes("replicate") if r.upstream_model.endswith("v4-turbo")]
    assert route.inputs is not None and route.inputs.refusals({"aspect_ratio": ratio}) == {}
    width, height = (int(side) for side in resolution.split("x"))
    wide, tall = (int(side) for side in ratio.split(":"))
    assert Fraction(width, height) == Fraction(wide, tall)
    sent = replicate.build_input(route, "a fox", {"aspect_ratio": ratio})
    assert sent == {"prompt": "a fox", "resolution": resolution}
    chosen = replicate.build_input(
        route, "a fox", {"aspect_ratio": ratio, "resolution": "2048x2048"}
    )
    assert chosen["resolution"] == "2048x2048"  # an explicit resolution wins


def test_only_the_two_ideogram_ratios_with_no_4_0_resolution_are_refused() -> None:
    [route] = [r for _s, r in _routes("replicate") if r.upstream_model.endswith("v4-quality")]
    assert route.inputs is not None
    assert set(_ideogram_ratios("v3")) - set(V4_REPLICATE_RATIOS) == {"1:3", "3:1"}
    for ratio in ("1:3", "3:1", "21:9"):
        assert "aspect_ratio" in route.inputs.refusals({"aspect_ratio": ratio})


def _bounds(description: str) -> tuple[str, str]:
    match = re.search(r"between (\d+:\d+) and (\d+:\d+)", description)
    assert match is not None, description
    return match[1], match[2]


def test_the_ultra_route_takes_exactly_the_ratios_bfl_describes() -> None:
    [(spec, route)] = [
        (spec, route) for spec, route in _routes("bfl") if route.upstream_model.endswith("ultra")
    ]
    assert route.inputs is not None
    assert route.inputs.ratios == _bounds(ENUMS["bfl"]["FluxUltraInput.aspect_ratio"])
    for inside in ("21:9", "9:21", "1:1", "7:5", "16:9"):
        assert route.inputs.refusals({"aspect_ratio": inside}) == {}, spec.id
    for outside in ("32:9", "9:32", "22:9"):
        assert "aspect_ratio" in route.inputs.refusals({"aspect_ratio": outside}), spec.id


def _enum_values(annotation: Any) -> tuple[str, ...]:
    """The values of ``Literal[...]`` or ``Literal[...] | None``."""
    if get_origin(annotation) is Literal:
        return tuple(str(value) for value in get_args(annotation))
    return tuple(value for arg in get_args(annotation) for value in _enum_values(arg))


def _literal_values(spec: ModelSpec, name: str) -> tuple[str, ...]:
    values = _enum_values(spec.params.model_fields[name].annotation)
    assert values, f"{spec.id}.{name} is not an enum"
    return values


OPENAI_CASES = [
    pytest.param(spec, route, ratio, id=f"{spec.id}-{route.upstream_model}-{ratio}")
    for spec, route in _routes("openai")
    for ratio in _literal_values(spec, "aspect_ratio")
]


@pytest.mark.parametrize(("spec", "route", "ratio"), OPENAI_CASES)
def test_every_openai_ratio_is_sent_as_a_size_the_vendor_lists(
    spec: ModelSpec, route: Route, ratio: str
) -> None:
    request = _request(spec.id, route, {"aspect_ratio": ratio})
    if openai.is_dalle(route.upstream_model):
        payload = openai.dalle_payload(route.upstream_model, request, hd=False)
    else:
        payload = openai.gpt_image_payload(route.upstream_model, request)
        edit = {key for key in payload if key in openai.EDIT_FIELDS}
        assert payload["size"] in ENUMS["openai"]["CreateImageEditRequest.size"]
        assert edit <= set(ENUMS["openai"]["CreateImageEditRequest"])
        assert set(ENUMS["openai"]["CreateImageEditRequest"]) >= openai.EDIT_FIELDS
    assert payload["size"] in ENUMS["openai"]["CreateImageRequest.size"]
    assert set(payload) <= set(ENUMS["openai"]["CreateImageRequest"])


def _xai_name(ratio: str) -> str:
    """``"19.5:9"`` as ``image.proto`` names it: ``IMG_ASPECT_RATIO_19_5_9``."""
    return "IMG_ASPECT_RATIO_" + re.sub(r"[:.]", "_", ratio).upper()


XAI_CASES = [
    pytest.param(spec, route, ratio, id=f"{spec.id}-{ratio}")
    for spec, route in _routes("xai")
    for ratio in _literal_values(spec, "aspect_ratio")
]


@pytest.mark.parametrize(("spec", "route", "ratio"), XAI_CASES)
def test_every_grok_ratio_is_one_xai_lists(spec: ModelSpec, route: Route, ratio: str) -> None:
    assert XAI_CASES
    assert _xai_name(ratio) in ENUMS["xai"]["ImageAspectRatio"], (spec.id, route)


def test_the_fake_xai_takes_only_ratios_and_resolutions_xai_lists() -> None:
    from imagegate.providers.xai import Options
    from imagegate.testing.fake_upstream.xai import ASPECT_RATIOS

    for ratio in ASPECT_RATIOS:
        assert _xai_name(ratio) in ENUMS["xai"]["ImageAspectRatio"]
    resolutions = _enum_values(Options.model_fields["resolution"].annotation)
    names = {f"IMG_RESOLUTION_{value.upper()}" for value in resolutions}
    assert names and names <= set(ENUMS["xai"]["ImageResolution"])


_WORDS = {"ONE": 1, "TWO": 2, "THREE": 3, "FOUR": 4, "FIVE": 5, "EIGHT": 8, "NINE": 9,
          "SIXTEEN": 16, "TWENTY_ONE": 21}  # fmt: skip


def _gemini_ratio(name: str) -> str:
    """``ASPECT_RATIO_TWENTY_ONE_BY_NINE`` (the SDK's enum) as ``"21:9"``."""
    wide, tall = name.removeprefix("ASPECT_RATIO_").split("_BY_")
    return f"{_WORDS[wide]}:{_WORDS[tall]}"


GEMINI_SDK_RATIOS = {
    _gemini_ratio(name)
    for name in ENUMS["gemini"]["AspectRatio"]
    if not name.endswith("UNSPECIFIED")
}


def _gemini_table(spec: ModelSpec, route: Route) -> tuple[str, ...]:
    """The ratios a Gemini route takes: its table, else the model's own ``Literal`` (Imagen)."""
    if route.inputs is not None and "aspect_ratio" in route.inputs.values:
        return route.inputs.values["aspect_ratio"]
    return _literal_values(spec, "aspect_ratio")


GEMINI_CASES = [
    pytest.param(spec, route, ratio, id=f"{spec.id}-{route.upstream_model}-{ratio}")
    for spec, route in _routes("gemini")
    for ratio in _gemini_table(spec, route)
]


def test_the_sdk_enum_reads_as_the_ratios_google_documents() -> None:
    assert len(GEMINI_SDK_RATIOS) == 14
    assert set(ENUMS["gemini"]["ImageConfig.aspect_ratio"]) <= GEMINI_SDK_RATIOS


@pytest.mark.parametrize(("spec", "route", "ratio"), GEMINI_CASES)
async def test_every_gemini_ratio_is_one_google_lists_and_is_sent_unchanged(
    spec: ModelSpec, route: Route, ratio: str
) -> None:
    assert ratio in GEMINI_SDK_RATIOS
    async with httpx2.AsyncClient() as client:
        adapter = gemini.GeminiAdapter(
            client, ProviderContext(fetch_input=_no_fetch), models={}, fixed_size_models=()
        )
        body = await adapter.payload(
            _request(spec.id, route, {"aspect_ratio": ratio}), route.upstream_model
        )
    assert body["generationConfig"]["imageConfig"]["aspectRatio"] == ratio


@pytest.mark.parametrize(
    ("spec", "route"),
    [pytest.param(spec, route, id=f"{spec.id}-{route.upstream_model}") for spec, route in
     _routes("gemini")],
)  # fmt: skip
def test_every_gemini_route_takes_the_ratios_google_documents_and_refuses_others(
    spec: ModelSpec, route: Route
) -> None:
    table = set(_gemini_table(spec, route))
    if route.inputs is not None and "aspect_ratio" in route.inputs.values:
        # a Nano Banana route: every documented ratio, the SDK's extreme ones on 3.1 flash only
        assert set(ENUMS["gemini"]["ImageConfig.aspect_ratio"]) <= table
        extreme = GEMINI_SDK_RATIOS - set(nano_banana.GEMINI_RATIOS)
        assert (table >= extreme) == ("3.1-flash-image" in route.upstream_model)
        for outside in ("7:3", "9:21", "auto", "32:9"):
            assert "aspect_ratio" in route.inputs.refusals({"aspect_ratio": outside}), outside
    assert table <= GEMINI_SDK_RATIOS


def test_the_fake_gemini_takes_exactly_the_ratios_the_routes_send() -> None:
    from imagegate.testing.fake_upstream import gemini as fake_gemini

    assert set(nano_banana.GEMINI_RATIOS) == fake_gemini.RATIOS
    assert set(nano_banana.GEMINI_3_1_FLASH_RATIOS) == fake_gemini.RATIOS | fake_gemini.EXTRA_RATIOS


def test_every_gemini_resolution_is_an_image_size_google_lists() -> None:
    names = {"512": "FIVE_TWELVE", "1K": "ONE_K", "2K": "TWO_K", "4K": "FOUR_K"}
    for spec, _route in _routes("gemini"):
        if "resolution" not in spec.params.model_fields:
            continue
        for resolution in _literal_values(spec, "resolution"):
            sent = gemini._image_size(resolution)
            assert sent is not None
            assert f"IMAGE_SIZE_{names[sent]}" in ENUMS["gemini"]["ImageSize"], resolution


def _reve_ratios() -> set[str]:
    return set(re.findall(r'`"([^"]+)"`', ENUMS["reve"]["create.aspect_ratio"]))


def test_every_reve_ratio_is_one_the_sdk_readme_lists() -> None:
    listed = _reve_ratios()
    assert "16:9" in listed and "auto" in listed
    [(spec, _route)] = list(_routes("reve"))
    assert set(_literal_values(spec, "aspect_ratio")) <= listed


def test_the_fake_reve_and_the_option_take_the_quality_range_the_readme_gives() -> None:
    from imagegate.testing.fake_upstream import reve as fake_reve

    match = re.search(r"(\d+)\u2013(\d+)", ENUMS["reve"]["create.test_time_scaling"])
    assert match is not None
    low, high = int(match[1]), int(match[2])
    assert (low, high) == fake_reve.TEST_TIME_SCALING
    assert set(fake_reve.ASPECT_RATIOS) <= _reve_ratios()
    reve.Options(test_time_scaling=high)
    for outside in (low - 1, high + 1):
        with pytest.raises(ValueError, match="test_time_scaling"):
            reve.Options(test_time_scaling=outside)


CHECKED = {
    "openai": "sizes and fields walked here; bodies in test_openai_ideogram_request_schemas.py",
    "ideogram": "ratios walked here; bodies in test_openai_ideogram_request_schemas.py",
    "bfl": "ultra's ratio range here; every body in test_bfl_replicate_request_schemas.py",
    "xai": "ratios and resolutions against image.proto here",
    "gemini": "ratios and image sizes against the proto and the SDK's API report here",
    "reve": "ratios and the quality range against the SDK README here",
    "dashscope": "every size sent, against the Model Studio pages' size lists and bounds here",
}
"""Providers whose routes are walked against a vendor-published description."""
UNCHECKED = {
    "replicate": "the envelope is checked; no per-model input schema is in the references",
    "fal": "fal publishes its platform API only, not the queue or per-endpoint inputs",
    "ark": "BytePlus/Volcengine publish no HTTP description (SDK code only)",
    "kling": "Kling publishes no description of its developer API",
    "midjourney": "midjourney-proxy has no static API description (prose and DTOs only)",
    "sandbox": "imagegate's own renderer",
}
"""Providers with no vendor-published description to walk against, and why (docs/providers.md)."""


def test_every_route_of_every_model_is_walked_or_listed_as_unchecked() -> None:
    providers = {route.provider for spec in CATALOG for route in (*spec.routes, *spec.substitutes)}
    assert not set(CHECKED) & set(UNCHECKED)
    assert providers <= set(CHECKED) | set(UNCHECKED), providers - set(CHECKED) - set(UNCHECKED)
    assert set(CHECKED) <= providers


DASHSCOPE: dict[str, Any] = ENUMS["dashscope"]


def _pairs(text: str) -> list[tuple[int, int]]:
    """``2048*2048``, ``768\\*768`` or ``768_768`` in a page's line, as numbers."""
    return [(int(w), int(h)) for w, h in re.findall(r"(\d+)\\?[*_](\d+)", text)]


def _dashscope_bounds(key: str) -> tuple[int, int, Fraction | None, Fraction | None]:
    """(least pixels, most pixels, tallest ratio, widest ratio) from one page line."""
    line = DASHSCOPE[key]
    (lw, lh), (hw, hh) = _pairs(line)[:2]
    ratios = re.findall(r"(\d+):(\d+)", line)
    tall, wide = (Fraction(int(w), int(h)) for w, h in ratios) if ratios else (None, None)
    return lw * lh, hw * hh, tall, wide


def _dashscope_rule(upstream: str) -> tuple[str, ...]:
    """Which page lines bind the sizes sent to ``upstream``."""
    if upstream.startswith("qwen-image-2"):
        return ("qwen-image-2.0.pixels",)
    if upstream.startswith("wan2.6"):  # both modes' bounds: the tighter one wins
        return ("wan2.6.interleave-off.pixels", "wan2.6.interleave-on.pixels")
    if upstream.startswith("wan2.7"):
        return ("wan2.7-image.pixels",)
    assert upstream == "qwen-image", f"no page line names the sizes of {upstream}"
    return ()


DASHSCOPE_CASES = [
    pytest.param(spec, route, value, id=f"{spec.id}-{value}")
    for spec, route in _routes("dashscope")
    for name in ("image_size", "aspect_ratio")
    if name in spec.params.model_fields
    for value in _literal_values(spec, name)
]


@pytest.mark.parametrize(("spec", "route", "value"), DASHSCOPE_CASES)
def test_every_dashscope_size_is_one_the_model_studio_pages_allow(
    spec: ModelSpec, route: Route, value: str
) -> None:
    name = "image_size" if "image_size" in spec.params.model_fields else "aspect_ratio"
    size = dashscope.size_for(route.upstream_model, {name: value})
    assert size is not None, value
    width, height = (int(side) for side in size.split("*"))
    if route.upstream_model == "qwen-image":  # the plus series: only the listed sizes
        assert size in DASHSCOPE["qwen-image-max-plus.sizes"]
        return
    if route.upstream_model.startswith("qwen-image-2") and value in ("1:1", "16:9", "9:16"):
        assert size in DASHSCOPE["qwen-image-2.0.recommended"]
    for key in _dashscope_rule(route.upstream_model):
        least, most, tall, wide = _dashscope_bounds(key)
        assert least <= width * height <= most, (key, size)
        if tall is not None and wide is not None:
            assert tall <= Fraction(width, height) <= wide, (key, size)
    assert (width % 16 == 0 and height % 16 == 0) or size in DASHSCOPE["qwen-image-2.0.recommended"]


def test_every_dashscope_route_is_walked() -> None:
    walked = {id(route) for spec, route, _value in (case.values for case in DASHSCOPE_CASES)}
    assert walked == {id(route) for _spec, route in _routes("dashscope")}
