"""A fake Ideogram API: legacy ``/generate``, ``/edit``, ``/remix``, the Ideogram 3.0 trio and
the Ideogram 4.0 ``/v1/ideogram-v4/generate``.

Auth is the ``Api-Key`` header; a missing or wrong key gets 401. Requests are validated against
Ideogram's OpenAPI enums and rules (aspect ratio and resolution spellings, ``resolution`` exclusive
with ``aspect_ratio``, ``num_images`` 1–8, ``/edit`` only for ``V_2``/``V_2_TURBO``, at most one
character reference, ``negative_prompt`` only on V_1/V_2 models, required files). Invalid input is
a 400 ``{"error": …}``; Ideogram documents no 400/401 body, so that shape is an assumption.

Ideogram 4.0 takes only ``prompt``, ``seed``, ``magic_prompt_option`` and ``custom_model_uri``
(JSON or multipart); it validates those and, unlike the vendor, refuses any other field so a test
sees an adapter sending what the endpoint does not document. Its items have no ``style_type``.

Answers list URLs served by the fake itself (``GET /api/images/ephemeral/<id>.png``) pointing at
real PNGs shaped like the requested aspect ratio or resolution. Prompt switches (see ``kit``):
``moderate-me``, ``rate-limit-me``, ``no-funds``, ``server-error``, ``unavailable``,
``unsafe-output``.

Every API request is recorded in ``app.state.requests``: method, path, query, headers, and
either the JSON body or the multipart form (text fields as strings, files as ``{"filename",
"content_type", "size"}``).
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image

from imagegate.testing.fake_upstream import kit
from imagegate.testing.fake_upstream.kit import Switch
from imagegate.testing.large_images import large_png

__all__ = ["create_app"]

API_KEY = "test-ideogram-key"
LEGACY_MODELS = {"V_1", "V_1_TURBO", "V_2", "V_2_TURBO", "V_2A", "V_2A_TURBO", "V_3", "AUTO"}
LEGACY_RATIOS = {
    "ASPECT_10_16", "ASPECT_16_10", "ASPECT_9_16", "ASPECT_16_9", "ASPECT_3_2", "ASPECT_2_3",
    "ASPECT_4_3", "ASPECT_3_4", "ASPECT_1_1", "ASPECT_1_3", "ASPECT_3_1",
}  # fmt: skip
V3_RATIOS = {
    "1x3", "3x1", "1x2", "2x1", "9x16", "16x9", "10x16", "16x10", "2x3", "3x2", "3x4", "4x3",
    "4x5", "5x4", "1x1",
}  # fmt: skip
LEGACY_RESOLUTIONS = frozenset({
    "RESOLUTION_512_1536", "RESOLUTION_576_1408", "RESOLUTION_576_1472", "RESOLUTION_576_1536",
    "RESOLUTION_640_1024", "RESOLUTION_640_1344", "RESOLUTION_640_1408", "RESOLUTION_640_1472",
    "RESOLUTION_640_1536", "RESOLUTION_704_1152", "RESOLUTION_704_1216", "RESOLUTION_704_1280",
    "RESOLUTION_704_1344", "RESOLUTION_704_1408", "RESOLUTION_704_1472", "RESOLUTION_720_1280",
    "RESOLUTION_736_1312", "RESOLUTION_768_1024", "RESOLUTION_768_1088", "RESOLUTION_768_1152",
    "RESOLUTION_768_1216", "RESOLUTION_768_1232", "RESOLUTION_768_1280", "RESOLUTION_768_1344",
    "RESOLUTION_832_960", "RESOLUTION_832_1024", "RESOLUTION_832_1088", "RESOLUTION_832_1152",
    "RESOLUTION_832_1216", "RESOLUTION_832_1248", "RESOLUTION_864_1152", "RESOLUTION_896_960",
    "RESOLUTION_896_1024", "RESOLUTION_896_1088", "RESOLUTION_896_1120", "RESOLUTION_896_1152",
    "RESOLUTION_960_832", "RESOLUTION_960_896", "RESOLUTION_960_1024", "RESOLUTION_960_1088",
    "RESOLUTION_1024_640", "RESOLUTION_1024_768", "RESOLUTION_1024_832", "RESOLUTION_1024_896",
    "RESOLUTION_1024_960", "RESOLUTION_1024_1024", "RESOLUTION_1088_768", "RESOLUTION_1088_832",
    "RESOLUTION_1088_896", "RESOLUTION_1088_960", "RESOLUTION_1120_896", "RESOLUTION_1152_704",
    "RESOLUTION_1152_768", "RESOLUTION_1152_832", "RESOLUTION_1152_864", "RESOLUTION_1152_896",
    "RESOLUTION_1216_704", "RESOLUTION_1216_768", "RESOLUTION_1216_832", "RESOLUTION_1232_768",
    "RESOLUTION_1248_832", "RESOLUTION_1280_704", "RESOLUTION_1280_720", "RESOLUTION_1280_768",
    "RESOLUTION_1280_800", "RESOLUTION_1312_736", "RESOLUTION_1344_640", "RESOLUTION_1344_704",
    "RESOLUTION_1344_768", "RESOLUTION_1408_576", "RESOLUTION_1408_640", "RESOLUTION_1408_704",
    "RESOLUTION_1472_576", "RESOLUTION_1472_640", "RESOLUTION_1472_704", "RESOLUTION_1536_512",
    "RESOLUTION_1536_576", "RESOLUTION_1536_640",
})  # fmt: skip
"""Ideogram's ``Resolution`` enum."""
V3_RESOLUTIONS = frozenset({
    "512x1536", "576x1408", "576x1472", "576x1536", "640x1344", "640x1408", "640x1472",
    "640x1536", "704x1152", "704x1216", "704x1280", "704x1344", "704x1408", "704x1472",
    "736x1312", "768x1088", "768x1216", "768x1280", "768x1344", "800x1280", "832x960",
    "832x1024", "832x1088", "832x1152", "832x1216", "832x1248", "864x1152", "896x960",
    "896x1024", "896x1088", "896x1120", "896x1152", "960x832", "960x896", "960x1024",
    "960x1088", "1024x832", "1024x896", "1024x960", "1024x1024", "1088x768", "1088x832",
    "1088x896", "1088x960", "1120x896", "1152x704", "1152x832", "1152x864", "1152x896",
    "1216x704", "1216x768", "1216x832", "1248x832", "1280x704", "1280x768", "1280x800",
    "1312x736", "1344x640", "1344x704", "1344x768", "1408x576", "1408x640", "1408x704",
    "1472x576", "1472x640", "1472x704", "1536x512", "1536x576", "1536x640",
})  # fmt: skip
"""Ideogram's ``ResolutionV3`` enum."""
LEGACY_STYLES = {"AUTO", "GENERAL", "FICTION", "REALISTIC", "DESIGN", "RENDER_3D", "ANIME",
                 "CUSTOM", "STYLIZED"}  # fmt: skip
V3_STYLES = {"AUTO", "GENERAL", "REALISTIC", "DESIGN", "CUSTOM", "FICTION", "STYLIZED"}
SPEEDS = {"FLASH", "TURBO", "BALANCED", "DEFAULT", "QUALITY"}
MAGIC = {"AUTO", "ON", "OFF"}
PRESETS = {"80S_ILLUSTRATION", "ART_DECO", "BAUHAUS", "OIL_PAINTING", "POP_ART", "WATERCOLOR",
           "90S_NOSTALGIA", "FLAT_VECTOR", "TRAVEL_POSTER", "VINTAGE_POSTER"}  # fmt: skip
"""A subset of Ideogram's 62 presets: enough to tell a translated name from an untranslated one."""
V4_FIELDS = frozenset({"prompt", "seed", "magic_prompt_option", "custom_model_uri"})
"""``GenerateImageRequestV4``'s properties."""
_SIZE = re.compile(r"^(\d+)x(\d+)$")
_SAFETY = "Prompt provided failed safety check due to the inclusion of prohibited content."
_IMAGES = "/api/images/ephemeral/"
"""Where result images are served, as ``<id>.png``."""
_REFUSALS: Mapping[Switch, Callable[[], Response]] = {
    Switch.MODERATE: lambda: JSONResponse({"error": _SAFETY}, status_code=422),
    Switch.RATE_LIMIT: lambda: JSONResponse(
        {
            "error": "Too many in-flight requests.",
            "reject_reason": "inflight_limit",
            "max_inflight_requests": 10,
            "task_completion_speed": 1.0,
        },
        status_code=429,
        headers={"Retry-After": "5"},
    ),
    Switch.NO_FUNDS: lambda: JSONResponse(
        {"error": "Insufficient funds.", "reject_reason": "insufficient_funds"}, status_code=402
    ),
    Switch.SERVER_ERROR: lambda: JSONResponse({"error": "Internal server error"}, status_code=500),
    Switch.UNAVAILABLE: lambda: JSONResponse(
        {"error": "Service temporarily unavailable"}, status_code=503
    ),
}
"""The switches Ideogram answers with an HTTP error, in the order it checks them."""


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


def _png(width: int, height: int, label: str) -> bytes:
    return kit.picture(kit.fit((width, height), 128, floor=8), (240, 90, 40), label[:20])


def _shape(aspect: str | None, resolution: str | None) -> tuple[int, int]:
    for value in (resolution, aspect):
        if value:
            numbers = re.findall(r"\d+", value)
            return int(numbers[0]), int(numbers[1])
    return 1, 1


def _uploads(record: kit.RecordedRequest) -> dict[str, list[kit.Upload]]:
    files: dict[str, list[kit.Upload]] = {}
    for upload in record.files:
        files.setdefault(upload.name, []).append(upload)
    return files


def _view(record: kit.RecordedRequest) -> dict[str, Any]:
    """Ideogram's record: the JSON body, or the form and a description of each file."""
    view = {key: value for key, value in record.as_dict().items() if key != "json"}
    content_type = record.headers.get("content-type", "")
    if record.multipart:
        view["form"] = dict(record.form)
        view["files"] = {
            name: [
                {"filename": u.filename, "content_type": u.content_type, "size": len(u.data)}
                for u in uploads
            ]
            for name, uploads in _uploads(record).items()
        }
    elif content_type.startswith("application/json") and record.json is not None:
        view["json"] = record.json
    return view


def _check_images(files: dict[str, list[kit.Upload]]) -> str | None:
    for key, uploads in files.items():
        for upload in uploads:
            try:
                Image.open(io.BytesIO(upload.data)).verify()
            except Exception:  # any decoder failure means the client sent a bad file
                return f"{key} must be a JPEG, PNG or WebP image"
    return None


def _common(fields: dict[str, Any], *, v3: bool) -> str | None:
    """Checks shared by every endpoint: prompt, seed, num_images, enums."""
    if not str(fields.get("prompt") or "").strip():
        return "prompt is required"
    try:
        seed = int(fields["seed"]) if "seed" in fields else 0
        count = int(fields.get("num_images", 1))
    except (TypeError, ValueError):
        return "seed and num_images must be integers"
    if not 0 <= seed <= 2147483647:
        return "seed must be between 0 and 2147483647"
    if not 1 <= count <= 8:
        return "num_images must be between 1 and 8"
    ratios, styles = (V3_RATIOS, V3_STYLES) if v3 else (LEGACY_RATIOS, LEGACY_STYLES)
    if fields.get("aspect_ratio") is not None and fields["aspect_ratio"] not in ratios:
        return f"Invalid aspect_ratio: {fields['aspect_ratio']}"
    if fields.get("resolution") is not None:
        if fields.get("aspect_ratio") is not None:
            return "resolution cannot be used in conjunction with aspect_ratio"
        if fields["resolution"] not in (V3_RESOLUTIONS if v3 else LEGACY_RESOLUTIONS):
            return f"Invalid resolution: {fields['resolution']}"
    if fields.get("style_type") is not None and fields["style_type"] not in styles:
        return f"Invalid style_type: {fields['style_type']}"
    magic_key = "magic_prompt" if v3 else "magic_prompt_option"
    if fields.get(magic_key) is not None and fields[magic_key] not in MAGIC:
        return f"Invalid {magic_key}: {fields[magic_key]}"
    if v3:
        if fields.get("rendering_speed") is not None and fields["rendering_speed"] not in SPEEDS:
            return f"Invalid rendering_speed: {fields['rendering_speed']}"
        if fields.get("style_preset") is not None and fields["style_preset"] not in PRESETS:
            return f"Invalid style_preset: {fields['style_preset']}"
    else:
        model = fields.get("model", "V_2")
        if model not in LEGACY_MODELS:
            return f"Invalid model: {model}"
        if fields.get("negative_prompt") and model not in {"V_1", "V_1_TURBO", "V_2", "V_2_TURBO"}:
            return f"negative_prompt is not supported for model {model}"
    return None


def create_app(
    api_key: str = API_KEY, *, image_bytes: int | None = None, **_options: Any
) -> FastAPI:
    """The fake Ideogram API; ``api_key`` is the one key it accepts.

    With ``image_bytes`` every result is ``large_images.large_png(image_bytes)`` instead of a
    small picture of the request's shape (the memory benchmark of large outputs).
    """
    app = FastAPI(title="fake ideogram")
    shelf = kit.ImageShelf()
    kit.record_requests(
        app,
        view=_view,
        recorded=lambda path: not path.startswith(_IMAGES),
        authenticate=kit.require_key(
            api_key,
            header="api-key",
            missing=lambda: JSONResponse({"error": "Unauthorized"}, status_code=401),
        ),
    )

    def steer(prompt: str) -> Response | None:
        return kit.steer(prompt, _REFUSALS)

    def answer(
        request: Request, fields: dict[str, Any], width: int, height: int, *, v4: bool = False
    ) -> JSONResponse:
        prompt = str(fields["prompt"])
        safe = Switch.UNSAFE_OUTPUT not in prompt
        style = fields.get("style_type") or "GENERAL"
        items = []
        for n in range(int(fields.get("num_images", 1))):
            image_id = uuid.uuid4().hex
            url = None
            if safe:
                path = f"{_IMAGES}{image_id}.png"
                image = (
                    large_png(image_bytes)
                    if image_bytes
                    else _png(width, height, f"{prompt} #{n + 1}")
                )
                shelf.put(path, image, "image/png")
                url = shelf.url(request, path)
            items.append(
                {
                    "url": url,
                    "prompt": prompt,
                    "resolution": f"{width}x{height}",
                    "upscaled_resolution": None,
                    "is_image_safe": safe,
                    "seed": int(fields.get("seed", 12345)),
                    "style_type": style,
                }
            )
            if v4:  # ImageGenerationObjectV4 has neither field
                del items[-1]["style_type"], items[-1]["upscaled_resolution"]
        return JSONResponse({"created": datetime.now(UTC).isoformat(), "data": items})

    async def handle(
        request: Request,
        *,
        v3: bool,
        multipart: bool,
        required: tuple[str, ...] = (),
        models: frozenset[str] | None = None,
    ) -> Response:
        record = kit.recorded(request)
        files: dict[str, list[kit.Upload]] = {}
        if record.multipart:
            fields, files = dict(record.form), _uploads(record)
            if "image_request" in fields:  # legacy remix: the request is a JSON form field
                try:
                    fields = dict(json.loads(fields["image_request"]))
                except (TypeError, ValueError):
                    return _bad("image_request must be a JSON object")
        elif not multipart and record.headers.get("content-type", "").startswith(
            "application/json"
        ):
            if record.json is None:
                return _bad("Request body is not valid JSON")
            body = record.json
            parsed = body if v3 or not isinstance(body, dict) else body.get("image_request")
            if not isinstance(parsed, dict):
                return _bad("image_request is required")
            fields = parsed
        else:
            return _bad("Unsupported content type: " + record.headers.get("content-type", ""))
        for name in required:
            if name not in files:
                return _bad(f"{name} is required")
        if (problem := _common(fields, v3=v3)) is not None:
            return _bad(problem)
        if models is not None and fields.get("model") not in models:
            return _bad(f"{request.url.path} is only supported for {', '.join(sorted(models))}")
        if (problem := _check_images(files)) is not None:
            return _bad(problem)
        if len(files.get("style_reference_images", [])) > 3:
            return _bad("At most 3 style reference images are supported")
        if len(files.get("character_reference_images", [])) > 1:
            return _bad("Only 1 character reference image is currently supported")
        if fields.get("style_codes") and ("style_reference_images" in files or
                                          fields.get("style_type")):  # fmt: skip
            return _bad("style_codes cannot be used with style_reference_images or style_type")
        if (steered := steer(str(fields["prompt"]))) is not None:
            return steered
        width, height = _shape(fields.get("aspect_ratio"), fields.get("resolution"))
        return answer(request, fields, width, height)

    @app.post("/generate")
    async def generate(request: Request) -> Response:
        return await handle(request, v3=False, multipart=False)

    @app.post("/edit")
    async def edit(request: Request) -> Response:
        return await handle(
            request,
            v3=False,
            multipart=True,
            required=("image_file", "mask"),
            models=frozenset({"V_2", "V_2_TURBO"}),
        )

    @app.post("/remix")
    async def remix(request: Request) -> Response:
        return await handle(request, v3=False, multipart=True, required=("image_file",))

    @app.post("/v1/ideogram-v3/generate")
    async def generate_v3(request: Request) -> Response:
        return await handle(request, v3=True, multipart=False)

    @app.post("/v1/ideogram-v3/edit")
    async def edit_v3(request: Request) -> Response:
        return await handle(request, v3=True, multipart=True, required=("image", "mask"))

    @app.post("/v1/ideogram-v3/remix")
    async def remix_v3(request: Request) -> Response:
        return await handle(request, v3=True, multipart=True, required=("image",))

    @app.post("/v1/ideogram-v4/generate")
    async def generate_v4(request: Request) -> Response:
        record = kit.recorded(request)
        content_type = record.headers.get("content-type", "")
        fields: dict[str, Any]
        if record.multipart:
            fields = dict(record.form)
        elif content_type.startswith("application/json"):
            if record.json is None:
                return _bad("Request body is not valid JSON")
            fields = record.json
            if not isinstance(fields, dict):
                return _bad("Request body must be a JSON object")
        else:
            return _bad("Unsupported content type: " + content_type)
        if unknown := sorted(set(fields) - V4_FIELDS):
            return _bad(f"Unknown fields for Ideogram 4.0: {', '.join(unknown)}")
        if not isinstance(fields.get("prompt"), str) or not fields["prompt"].strip():
            return _bad("prompt is required")
        seed = fields.get("seed")
        if seed is not None:
            try:
                seed = int(seed)
            except (TypeError, ValueError):
                return _bad("seed must be an integer")
            if not 0 <= seed <= 2147483647:
                return _bad("seed must be between 0 and 2147483647")
        magic = fields.get("magic_prompt_option")
        if magic is not None and magic not in MAGIC:
            return _bad(f"Invalid magic_prompt_option: {magic}")
        if (steered := steer(fields["prompt"])) is not None:
            return steered
        present = {key: value for key, value in fields.items() if value is not None}
        return answer(request, present, 64, 64, v4=True)

    shelf.serve(app, _IMAGES, missing=lambda: JSONResponse({"error": "Not found"}, 404))
    return app
