"""Ideogram (``ideogramParams``): eleven models, one image per job.

Apiframe's schema is the same object for every Ideogram id, except that ``ideogram-character``
requires the params object and its ``character_reference_image`` (so it gets its own class with
that field required). What only some models accept is a rule: style presets
and style reference images are Ideogram 3.0 and 4.0 features, ``rendering_speed`` picks the tier
of ``ideogram-character`` only (the v3 and v4 ids already name their tier), and inpainting needs
both ``image`` and ``mask``. Ideogram 3.0 ids map to one upstream model with a rendering speed.

Ideogram's own 4.0 endpoint (``V_4``) documents no rendering speed, so only the balanced tier (the
vendor's default) routes there; turbo and quality run on Replicate's per-tier models. Neither
upstream takes an input image, so the 4.0 ids refuse ``image``, ``mask`` and
``style_reference_images`` rather than quietly generating from text.

The two 4.0 upstreams take different halves of ``ideogramParams``, and a route never drops a param
it cannot send: it refuses it, so the job goes to the other route or is a 400 naming the field.
``GenerateImageRequestV4`` (Ideogram) takes ``seed`` and ``magic_prompt_option`` and no shape at
all; Replicate's ``ideogram-v4-*`` take a ``resolution`` from their own list and no seed, and
always run Magic Prompt (so ``magic_prompt_option`` ``Auto``/``On`` is honoured there, ``Off`` is
not). ``aspect_ratio`` is mapped onto the Replicate resolution of exactly that ratio
(``16:9`` → ``2560x1440``); the thirteen ``AspectRatioV3`` ratios with such a resolution are
taken, ``1:3`` and ``3:1`` are not. ``style_type``, ``style_preset`` and ``negative_prompt`` reach
neither 4.0 upstream and are refused.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from typing import Literal

from pydantic import ConfigDict, Field

from imagegate.catalog import inputs
from imagegate.catalog.fields import Uri
from imagegate.catalog.inputs import same
from imagegate.catalog.params import Params
from imagegate.catalog.pricing import by_field, usd
from imagegate.catalog.rules import excludes, requires, unsupported
from imagegate.catalog.spec import Capabilities, ModelSpec, Pricing, RuleCheck
from imagegate.types import Route, RouteInputs

__all__ = [
    "SPECS",
    "V4_IDEOGRAM_REFUSES",
    "V4_REPLICATE_RATIOS",
    "IdeogramCharacterParams",
    "IdeogramParams",
]

KEY = "ideogramParams"


class _IdeogramFields(Params):
    """Every ``ideogramParams`` field except ``character_reference_image``."""

    model_config = ConfigDict(title=KEY)

    aspect_ratio: str | None = None
    resolution: str | None = None
    seed: int | None = None
    style_type: str | None = None
    style_preset: str | None = None
    magic_prompt_option: Literal["Auto", "On", "Off"] | None = None
    rendering_speed: Literal["default", "turbo", "quality"] | None = None
    negative_prompt: str | None = None
    image: Uri | None = None
    mask: Uri | None = None
    style_reference_images: list[Uri] | None = Field(default=None, max_length=3)


class IdeogramParams(_IdeogramFields):
    """``ideogramParams`` for the v2, v2a and v3 models."""

    character_reference_image: Uri | None = None


class IdeogramCharacterParams(_IdeogramFields):
    """``ideogramParams`` for ``ideogram-character``: the character reference is required."""

    character_reference_image: Uri


_EDIT_KEEPS = tuple(
    excludes(KEY, name, "mask", "an inpainting edit keeps its image's shape and takes no negatives")
    for name in ("aspect_ratio", "resolution", "negative_prompt")
)
"""Ideogram's ``/edit`` requests (and Replicate's inpainting) have no shape or negative prompt."""


def _rules(model_id: str, *, v3: bool, v4: bool = False) -> tuple[RuleCheck, ...]:
    """``v3`` is true for every model with style presets (Ideogram 3.0 and 4.0); ``v4`` marks the
    4.0 models, whose upstreams take no input image."""
    inpainting = (requires(KEY, "mask", "image"), requires(KEY, "image", "mask"), *_EDIT_KEEPS)
    only_character = (
        unsupported(KEY, "character_reference_image", model_id),
        unsupported(KEY, "rendering_speed", model_id),
    )
    only_v3 = (
        ()
        if v3
        else (
            unsupported(KEY, "style_preset", model_id),
            unsupported(KEY, "style_reference_images", model_id),
        )
    )
    no_inputs = (
        tuple(
            unsupported(KEY, name, model_id) for name in ("image", "mask", "style_reference_images")
        )
        if v4
        else ()
    )
    return (*inpainting, *only_character, *only_v3, *no_inputs)


LEGACY_RATIOS = ("10:16", "16:10", "9:16", "16:9", "3:2", "2:3", "4:3", "3:4", "1:1", "1:3", "3:1")
"""Ideogram's ``AspectRatio`` enum (``ASPECT_16_9`` …) in our spelling; fal's and Replicate's
Ideogram models take the same eleven, for v3 too."""
V3_RATIOS = (
    "1:3", "3:1", "1:2", "2:1", "9:16", "16:9", "10:16", "16:10", "2:3", "3:2", "3:4", "4:3",
    "4:5", "5:4", "1:1",
)  # fmt: skip
"""Ideogram's ``AspectRatioV3`` enum (``16x9`` …) in our spelling."""
LEGACY_RESOLUTIONS = (
    "512x1536", "576x1408", "576x1472", "576x1536", "640x1024", "640x1344", "640x1408", "640x1472",
    "640x1536", "704x1152", "704x1216", "704x1280", "704x1344", "704x1408", "704x1472", "720x1280",
    "736x1312", "768x1024", "768x1088", "768x1152", "768x1216", "768x1232", "768x1280", "768x1344",
    "832x960", "832x1024", "832x1088", "832x1152", "832x1216", "832x1248", "864x1152", "896x960",
    "896x1024", "896x1088", "896x1120", "896x1152", "960x832", "960x896", "960x1024", "960x1088",
    "1024x640", "1024x768", "1024x832", "1024x896", "1024x960", "1024x1024", "1088x768", "1088x832",
    "1088x896", "1088x960", "1120x896", "1152x704", "1152x768", "1152x832", "1152x864", "1152x896",
    "1216x704", "1216x768", "1216x832", "1232x768", "1248x832", "1280x704", "1280x720", "1280x768",
    "1280x800", "1312x736", "1344x640", "1344x704", "1344x768", "1408x576", "1408x640", "1408x704",
    "1472x576", "1472x640", "1472x704", "1536x512", "1536x576", "1536x640"
)  # fmt: skip
"""Ideogram's ``Resolution`` enum (``RESOLUTION_1024_1024`` …) in our spelling (``1024x1024``)."""
V3_RESOLUTIONS = (
    "512x1536", "576x1408", "576x1472", "576x1536", "640x1344", "640x1408", "640x1472", "640x1536",
    "704x1152", "704x1216", "704x1280", "704x1344", "704x1408", "704x1472", "736x1312", "768x1088",
    "768x1216", "768x1280", "768x1344", "800x1280", "832x960", "832x1024", "832x1088", "832x1152",
    "832x1216", "832x1248", "864x1152", "896x960", "896x1024", "896x1088", "896x1120", "896x1152",
    "960x832", "960x896", "960x1024", "960x1088", "1024x832", "1024x896", "1024x960", "1024x1024",
    "1088x768", "1088x832", "1088x896", "1088x960", "1120x896", "1152x704", "1152x832", "1152x864",
    "1152x896", "1216x704", "1216x768", "1216x832", "1248x832", "1280x704", "1280x768", "1280x800",
    "1312x736", "1344x640", "1344x704", "1344x768", "1408x576", "1408x640", "1408x704", "1472x576",
    "1472x640", "1472x704", "1536x512", "1536x576", "1536x640"
)  # fmt: skip
"""Ideogram's ``ResolutionV3`` enum, spelled as we spell it."""
UNSET = "None"
"""Apiframe's spelling of "not set", accepted wherever a value table stands."""
_EDITS = frozenset({"V_2", "V_2_TURBO"})
"""The legacy ids Ideogram's ``/edit`` serves; the other legacy ids cannot inpaint there."""


_LEGACY_VALUES = {
    "aspect_ratio": (*LEGACY_RATIOS, UNSET),
    "resolution": (*LEGACY_RESOLUTIONS, UNSET),
}
_V3_VALUES = {"aspect_ratio": (*V3_RATIOS, UNSET), "resolution": (*V3_RESOLUTIONS, UNSET)}


V4_UNSENT = ("style_type", "style_preset", "negative_prompt")
"""``ideogramParams`` that neither Ideogram 4.0 upstream takes: refused on both 4.0 routes."""
V4_IDEOGRAM_REFUSES = ("resolution", "aspect_ratio", *V4_UNSENT)
"""``GenerateImageRequestV4`` has only ``prompt``, ``seed``, ``magic_prompt_option`` and
``custom_model_uri``: a job naming a shape goes to Replicate, which takes one."""


def _ideogram_inputs(upstream: str, *, v3: bool, v4: bool) -> RouteInputs:
    """What Ideogram's own API can take for ``upstream`` (4.0 sends no shape at all)."""
    if v4:
        return RouteInputs(refuses=V4_IDEOGRAM_REFUSES)
    if v3:
        return RouteInputs(values=_V3_VALUES)
    # Ideogram documents ``negative_prompt`` for V_1 and V_2 only; /edit serves V_2 and V_2_TURBO.
    refuses = ("negative_prompt",) if upstream.startswith("V_2A") else ()
    mask = () if upstream in _EDITS else ("mask",)
    return RouteInputs(values=_LEGACY_VALUES, refuses=(*refuses, *mask))


_V3_FAL = inputs.fal(
    {
        **same("seed", "negative_prompt", "rendering_speed"),
        "style_type": "style",
        "magic_prompt_option": "expand_prompt",
        "style_reference_images": "image_urls",
        "character_reference_image": "reference_image_urls",
    },
    {
        "style": "upper",
        "expand_prompt": "magic",
        "reference_image_urls": "list",
        "rendering_speed": "upper",
    },
    sizes=inputs.FAL_SIZES,
    values={"aspect_ratio": (*inputs.FAL_SIZES, UNSET)},
)
# fal's Ideogram takes a size, not a resolution, and has no mask or style preset input
_V3_FAL = replace(_V3_FAL, refuses=("resolution", "mask", "style_preset"))
_V2_FAL = inputs.fal(
    {
        **same("aspect_ratio", "seed", "negative_prompt"),
        "style_type": "style",
        "magic_prompt_option": "expand_prompt",
    },
    {"style": "lower", "expand_prompt": "magic"},
    values={"aspect_ratio": (*LEGACY_RATIOS, UNSET)},
)
_V2_FAL = replace(_V2_FAL, refuses=("resolution", "mask"))
_REPLICATE_RATIOS = {"aspect_ratio": (*LEGACY_RATIOS, UNSET)}
_V2_REPLICATE_VALUES = {**_REPLICATE_RATIOS, "resolution": (*LEGACY_RESOLUTIONS, UNSET)}
_V3_REPLICATE_VALUES = {**_REPLICATE_RATIOS, "resolution": (*V3_RESOLUTIONS, UNSET)}
V4_REPLICATE_RESOLUTIONS = (
    "2048x2048", "1440x2880", "2880x1440", "1664x2496", "2496x1664", "1792x2240", "2240x1792",
    "1440x2560", "2560x1440", "1600x2560", "2560x1600", "1728x2304", "2304x1728", "1296x3168",
    "3168x1296", "1152x2944", "2944x1152", "1248x3328", "3328x1248", "1280x3072", "3072x1280",
)  # fmt: skip
"""``ideogram-ai/ideogram-v4-*`` on Replicate (the model pages' ``resolution`` enum); Ideogram's
own 4.0 endpoint takes no resolution."""


def _exact_resolutions(ratios: tuple[str, ...], resolutions: tuple[str, ...]) -> dict[str, str]:
    """Each ratio with the one resolution of exactly that shape (``16:9`` → ``2560x1440``)."""
    shapes = {Fraction(*map(int, size.split("x"))): size for size in resolutions}
    exact = {ratio: shapes.get(Fraction(*map(int, ratio.split(":")))) for ratio in ratios}
    return {ratio: size for ratio, size in exact.items() if size is not None}


V4_REPLICATE_RATIOS = _exact_resolutions(V3_RATIOS, V4_REPLICATE_RESOLUTIONS)
"""Our aspect ratios Replicate's 4.0 models can draw, sent as the resolution of that shape."""
_V2_REPLICATE = inputs.replicate(
    same(
        "aspect_ratio", "resolution", "style_type", "magic_prompt_option", "negative_prompt",
        "image", "mask", "seed",
    ),
    values=_V2_REPLICATE_VALUES,
)  # fmt: skip
_V3_REPLICATE = inputs.replicate(
    same(
        "aspect_ratio", "resolution", "style_type", "style_preset", "magic_prompt_option",
        "image", "mask", "style_reference_images", "seed",
    ),
    values=_V3_REPLICATE_VALUES,
)  # fmt: skip
_V3_REPLICATE = replace(_V3_REPLICATE, refuses=("negative_prompt",))  # no such input there
_V4_REPLICATE = replace(
    inputs.replicate(
        # An explicit resolution wins: the adapter fills an input once, in this order.
        {"resolution": "resolution", "aspect_ratio": "resolution"},
        values={
            "resolution": (*V4_REPLICATE_RESOLUTIONS, UNSET),
            "aspect_ratio": tuple(V4_REPLICATE_RATIOS),
            "magic_prompt_option": ("Auto", "On"),  # the model always runs Magic Prompt
        },
    ),
    sizes=V4_REPLICATE_RATIOS,
    refuses=("seed", *V4_UNSENT),
)
CHARACTER_REPLICATE = inputs.replicate(
    same(
        "aspect_ratio", "resolution", "style_type", "magic_prompt_option", "rendering_speed",
        "character_reference_image", "image", "mask", "seed",
    ),
    values=_V3_REPLICATE_VALUES,
)  # fmt: skip
CHARACTER_REPLICATE = replace(CHARACTER_REPLICATE, refuses=("negative_prompt", "style_preset"))


def _fal_inputs(model_id: str, *, v3: bool) -> RouteInputs:
    """Ideogram 3.0's tiers share one fal endpoint: the tier in the id is sent as
    ``rendering_speed`` (fal's default would be ``BALANCED``) unless the params name one."""
    if not v3:
        return _V2_FAL
    speed = model_id.rsplit("-", 1)[-1].upper()
    return replace(_V3_FAL, defaults={"rendering_speed": speed})


def _replicate_inputs(*, v3: bool, v4: bool) -> RouteInputs:
    return _V4_REPLICATE if v4 else _V3_REPLICATE if v3 else _V2_REPLICATE


def _model(
    model_id: str,
    label: str,
    description: str,
    credits: int,
    source: str,
    ideogram: str | None,
    replicate: str,
    fal: str | None,
    *,
    v3: bool,
    v4: bool = False,
) -> ModelSpec:
    """One Ideogram model; ``ideogram`` or ``fal`` is ``None`` where that vendor has no route."""
    routes = (
        Route("ideogram", ideogram, _ideogram_inputs(ideogram, v3=v3, v4=v4)) if ideogram else None,
        Route("replicate", replicate, _replicate_inputs(v3=v3, v4=v4)),
        Route("fal", fal, _fal_inputs(model_id, v3=v3)) if fal else None,
    )
    return ModelSpec(
        id=model_id,
        label=label,
        family="ideogram",
        params_key=KEY,
        params=IdeogramParams,
        description=description,
        pricing=Pricing({"default": credits}, source=source),
        capabilities=(
            Capabilities()
            if v4
            else Capabilities(image_input=True, editing=True, max_input_images=4 if v3 else 1)
        ),
        routes=tuple(route for route in routes if route is not None),
        rules=_rules(model_id, v3=v3, v4=v4),
    )


def _list_price(usd_text: str) -> str:
    return f"Ideogram API list price US${usd_text}/image, rounded up [unverified]"


SPECS = (
    _model(
        "ideogram-v2",
        "Ideogram 2.0",
        "Ideogram 2.0: strong typography and design, with inpainting.",
        usd("0.08"),
        _list_price("0.08"),
        "V_2",
        "ideogram-ai/ideogram-v2",
        "fal-ai/ideogram/v2",
        v3=False,
    ),
    _model(
        "ideogram-v2-turbo",
        "Ideogram 2.0 Turbo",
        "Ideogram 2.0 Turbo: faster, cheaper Ideogram 2.0.",
        usd("0.05"),
        _list_price("0.05"),
        "V_2_TURBO",
        "ideogram-ai/ideogram-v2-turbo",
        "fal-ai/ideogram/v2/turbo",
        v3=False,
    ),
    _model(
        "ideogram-v2a",
        "Ideogram 2a",
        "Ideogram 2a: fast graphic design and photography at a lower price.",
        usd("0.04"),
        _list_price("0.04"),
        "V_2A",
        "ideogram-ai/ideogram-v2a",
        "fal-ai/ideogram/v2a",
        v3=False,
    ),
    _model(
        "ideogram-v2a-turbo",
        "Ideogram 2a Turbo",
        "Ideogram 2a Turbo: the fastest, cheapest Ideogram 2 model.",
        3,
        "Apiframe docs-v2: 3 credits",
        "V_2A_TURBO",
        "ideogram-ai/ideogram-v2a-turbo",
        "fal-ai/ideogram/v2a/turbo",
        v3=False,
    ),
    _model(
        "ideogram-v3-balanced",
        "Ideogram 3.0 Balanced",
        "Ideogram 3.0 at balanced speed: style presets and style reference images.",
        usd("0.06"),
        _list_price("0.06"),
        "V_3_BALANCED",
        "ideogram-ai/ideogram-v3-balanced",
        "fal-ai/ideogram/v3",
        v3=True,
    ),
    _model(
        "ideogram-v3-turbo",
        "Ideogram 3.0 Turbo",
        "Ideogram 3.0 Turbo: fast text rendering and design with style references.",
        3,
        "Apiframe docs-v2: 3 credits",
        "V_3_TURBO",
        "ideogram-ai/ideogram-v3-turbo",
        "fal-ai/ideogram/v3",
        v3=True,
    ),
    _model(
        "ideogram-v3-quality",
        "Ideogram 3.0 Quality",
        "Ideogram 3.0 Quality: the most detailed Ideogram 3.0 renders.",
        usd("0.09"),
        _list_price("0.09"),
        "V_3_QUALITY",
        "ideogram-ai/ideogram-v3-quality",
        "fal-ai/ideogram/v3",
        v3=True,
    ),
    _model(
        "ideogram-v4-balanced",
        "Ideogram 4.0 Balanced",
        "Ideogram 4.0 at balanced speed: sharper typography and prompt alignment than 3.0.",
        usd("0.06"),
        _list_price("0.06"),
        "V_4",
        "ideogram-ai/ideogram-v4-balanced",
        None,
        v3=True,
        v4=True,
    ),
    _model(
        "ideogram-v4-turbo",
        "Ideogram 4.0 Turbo",
        "Ideogram 4.0 Turbo: the fastest, cheapest Ideogram 4.0 tier for drafts and volume.",
        usd("0.03"),
        _list_price("0.03"),
        None,
        "ideogram-ai/ideogram-v4-turbo",
        None,
        v3=True,
        v4=True,
    ),
    _model(
        "ideogram-v4-quality",
        "Ideogram 4.0 Quality",
        "Ideogram 4.0 Quality: the most detailed Ideogram 4.0 renders.",
        usd("0.10"),
        _list_price("0.10"),
        None,
        "ideogram-ai/ideogram-v4-quality",
        None,
        v3=True,
        v4=True,
    ),
    ModelSpec(
        id="ideogram-character",
        label="Ideogram Character",
        family="ideogram",
        params_key=KEY,
        params=IdeogramCharacterParams,
        description="Ideogram 3.0 Character: keeps one person consistent from a reference image.",
        pricing=Pricing(
            {"turbo": 10, "default": 15, "quality": 20},
            select=by_field("rendering_speed", "default"),
            source="Apiframe docs-v2: turbo 10, default 15, quality 20 credits",
        ),
        capabilities=Capabilities(image_input=True, editing=True, max_input_images=2),
        routes=(
            Route("ideogram", "V_3", _ideogram_inputs("V_3", v3=True, v4=False)),
            Route("replicate", "ideogram-ai/ideogram-character", CHARACTER_REPLICATE),
            Route("fal", "fal-ai/ideogram/character", _V3_FAL),
        ),
        rules=(
            requires(KEY, "mask", "image"),
            requires(KEY, "image", "mask"),
            *_EDIT_KEEPS,
            unsupported(KEY, "style_reference_images", "ideogram-character"),
        ),
        params_required=True,
    ),
)
