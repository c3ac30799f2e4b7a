"""A fake Replicate predictions API (``/v1``), faithful to the documented wire protocol.

- ``POST /v1/models/{owner}/{name}/predictions`` and ``POST /v1/predictions`` (``version``)
  answer 201 with a prediction object (``id, model, version, input, output, logs, error, status,
  created_at, started_at, completed_at, data_removed, metrics, urls{get,cancel,web}``);
  ``Prefer: wait=N`` holds the answer until the prediction finishes (here: at once unless slow).
- ``GET /v1/predictions/{id}``; ``POST /v1/predictions/{id}/cancel``.
- Errors are RFC 7807 problem JSON ``{title, detail, status}``; a bad token is 401
  ``Unauthenticated``; invalid input is 422 ``Input validation failed`` with ``invalid_fields``;
  an unknown model or prediction is 404.
- Outputs are real PNG/JPEG/WebP files served by the fake at ``/delivery/…``.

Known models are the slug families the catalog routes to (the proxies of the shut-down DALL·E and
Imagen models are unknown, i.e. 404); each validates ``aspect_ratio`` and
``output_format`` against its enum. The create body is held to ``schemas_prediction_request``
(no other top-level field, webhook events from Replicate's four) and ``Prefer: wait=n`` to 1–60.
Prompt switches (see ``kit``): at create ``rate-limit-me``,
``server-error``; when the prediction finishes ``moderate-me``, ``nsfw-me``, ``fail-me``;
``slow`` (three ``processing`` polls with tqdm progress in ``logs``); ``expire-fast`` (each
output file is deleted after its first download, as Replicate deletes outputs after an hour, so
a second fetch is a 404 like an expired ``replicate.delivery`` URL).

``app.state.requests`` records every request (method, path, query, headers, JSON body);
``app.state.predictions`` holds the predictions by id.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from imagegate.testing.fake_upstream import ideogram, kit
from imagegate.testing.fake_upstream.kit import Switch

__all__ = ["create_app"]

_RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "4:5", "5:4", "21:9", "9:21")
_FLUX_RATIOS = (*_RATIOS, "custom", "match_input_image")
_IDEOGRAM_RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "16:10", "10:16", "3:1",
                    "1:3")  # fmt: skip
_IDEOGRAM_V4_RESOLUTIONS = (
    "None", "2048x2048", "1440x2880", "2880x1440", "1664x2496", "2496x1664", "1792x2240",
    "2240x1792", "1440x2560", "2560x1440", "1600x2560", "2560x1600", "1728x2304", "2304x1728",
    "1296x3168", "3168x1296", "1152x2944", "2944x1152", "1248x3328", "3328x1248", "1280x3072",
    "3072x1280",
)  # fmt: skip
_IDEOGRAM_V2_RESOLUTIONS = (
    "None",
    *sorted(r.removeprefix("RESOLUTION_").replace("_", "x") for r in ideogram.LEGACY_RESOLUTIONS),
)
"""Replicate's Ideogram 2.x ``resolution``: Ideogram's ``Resolution`` enum, spelled ``WxH``."""
_IDEOGRAM_V3_RESOLUTIONS = ("None", *sorted(ideogram.V3_RESOLUTIONS))
"""Replicate's Ideogram 3.0 and character ``resolution``: Ideogram's ``ResolutionV3``."""
_V2 = {"aspect_ratio": _IDEOGRAM_RATIOS, "resolution": _IDEOGRAM_V2_RESOLUTIONS}
_V3 = {"aspect_ratio": _IDEOGRAM_RATIOS, "resolution": _IDEOGRAM_V3_RESOLUTIONS}
_SD_RATIOS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21")
_MODELS: dict[str, dict[str, tuple[str, ...]]] = {
    "openai/gpt-image-1.5": {"aspect_ratio": ("1:1", "3:2", "2:3"),
                             "output_format": ("png", "jpeg", "webp")},
    "openai/gpt-image-2": {"aspect_ratio": ("1:1", "3:2", "2:3"),
                           "output_format": ("png", "jpeg", "webp")},
    "google/nano-banana": {"aspect_ratio": (*_RATIOS, "match_input_image"),
                           "output_format": ("jpg", "png")},
    "google/nano-banana-pro": {"aspect_ratio": (*_RATIOS, "match_input_image"),
                               "output_format": ("jpg", "png")},
    "google/nano-banana-2": {"aspect_ratio": (*_RATIOS, "match_input_image"),
                             "output_format": ("jpg", "png")},
    "google/nano-banana-2-lite": {"aspect_ratio": (*_RATIOS, "match_input_image"),
                                  "output_format": ("jpg", "png")},
    "black-forest-labs/flux-1.1-pro": {"aspect_ratio": _FLUX_RATIOS,
                                       "output_format": ("webp", "jpg", "png")},
    "black-forest-labs/flux-1.1-pro-ultra": {"aspect_ratio": _RATIOS,
                                             "output_format": ("jpg", "png")},
    "black-forest-labs/flux-2-pro": {"aspect_ratio": _FLUX_RATIOS,
                                     "output_format": ("webp", "jpg", "png"),
                                     "resolution": ("match_input_image", "0.5 MP", "1 MP",
                                                    "2 MP", "4 MP")},
    "black-forest-labs/flux-2-flex": {"aspect_ratio": _FLUX_RATIOS,
                                      "output_format": ("webp", "jpg", "png"),
                                      "resolution": ("match_input_image", "0.5 MP", "1 MP",
                                                     "2 MP", "4 MP")},
    "black-forest-labs/flux-2-dev": {"aspect_ratio": _FLUX_RATIOS,
                                     "output_format": ("webp", "jpg", "png")},
    "black-forest-labs/flux-2-max": {"aspect_ratio": _FLUX_RATIOS,
                                     "output_format": ("webp", "jpg", "png"),
                                     "resolution": ("match_input_image", "0.5 MP", "1 MP",
                                                    "2 MP", "4 MP")},
    "ideogram-ai/ideogram-v3-turbo": _V3,
    "ideogram-ai/ideogram-v3-balanced": _V3,
    "ideogram-ai/ideogram-v3-quality": _V3,
    "ideogram-ai/ideogram-v2": _V2,
    "ideogram-ai/ideogram-v2-turbo": _V2,
    "ideogram-ai/ideogram-v2a": _V2,
    "ideogram-ai/ideogram-v2a-turbo": _V2,
    "ideogram-ai/ideogram-character": _V3,
    "ideogram-ai/ideogram-v4-turbo": {"resolution": _IDEOGRAM_V4_RESOLUTIONS},
    "ideogram-ai/ideogram-v4-balanced": {"resolution": _IDEOGRAM_V4_RESOLUTIONS},
    "ideogram-ai/ideogram-v4-quality": {"resolution": _IDEOGRAM_V4_RESOLUTIONS},
    "bytedance/seedream-4": {"aspect_ratio": (*_RATIOS, "match_input_image")},
    "bytedance/seedream-4.5": {"aspect_ratio": (*_RATIOS, "match_input_image"),
                               "size": ("2K", "4K", "custom")},
    "bytedance/seedream-5-lite": {"aspect_ratio": (*_RATIOS, "match_input_image"),
                                  "size": ("2K", "3K"), "output_format": ("png", "jpeg")},
    "bytedance/seedream-5-pro": {"aspect_ratio": (*_RATIOS, "match_input_image"),
                                 "output_format": ("png", "jpeg")},
    "bytedance/seedream-3": {"aspect_ratio": (*_RATIOS, "custom")},
    "bytedance/dreamina-3.1": {"aspect_ratio": (*_RATIOS, "custom")},
    "qwen/qwen-image": {"aspect_ratio": _RATIOS, "output_format": ("webp", "jpg", "png")},
    "wan-video/wan-2.7-image": {"aspect_ratio": _RATIOS},
    "wan-video/wan-2.7-image-pro": {"aspect_ratio": _RATIOS},
    "stability-ai/stable-diffusion-3.5-large": {"aspect_ratio": _SD_RATIOS,
                                                "output_format": ("webp", "jpg", "png")},
    "stability-ai/stable-diffusion-3.5-large-turbo": {"aspect_ratio": _SD_RATIOS,
                                                      "output_format": ("webp", "jpg", "png")},
    "stability-ai/stable-diffusion-3.5-medium": {"aspect_ratio": _SD_RATIOS,
                                                 "output_format": ("webp", "jpg", "png")},
    "stability-ai/stable-diffusion-3": {"aspect_ratio": _SD_RATIOS,
                                        "output_format": ("webp", "jpg", "png")},
}  # fmt: skip
_ENVELOPE = frozenset({"input", "stream", "webhook", "webhook_events_filter"})
"""``schemas_prediction_request``'s properties (``additionalProperties: false``); the version
create adds ``version``."""
_WEBHOOK_EVENTS = frozenset({"start", "output", "logs", "completed"})
_PREFER = re.compile(r"wait(=([1-9]|[1-5][0-9]|60))?")
"""``Prefer: wait=n``, "n is a number of seconds between 1 and 60" (the header's description;
its pattern alone would admit up to 99)."""
_COUNT_INPUTS = ("number_of_images", "max_images", "num_outputs")
_FORMATS = {"png": ("PNG", "image/png"), "jpg": ("JPEG", "image/jpeg"),
            "jpeg": ("JPEG", "image/jpeg"), "webp": ("WEBP", "image/webp")}  # fmt: skip
_RATIO = re.compile(r"^(\d+):(\d+)$")


def _problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    headers = {"Retry-After": "30"} if status == 429 else None
    return JSONResponse(
        {"title": title, "detail": detail, "status": status, **extra},
        status,
        headers,
        media_type="application/problem+json",
    )


@dataclass(kw_only=True)
class _Prediction(kit.Task):
    model: str
    version: str
    input: dict[str, Any]
    status: str = "starting"
    error: str | None = None
    logs: str = ""
    outputs: list[str] = field(default_factory=list)


def _render(prompt: str, index: int, ratio: str | None, fmt: str) -> bytes:
    width, height = 96, 96
    if ratio and (match := _RATIO.match(ratio)):
        w, h = int(match[1]), int(match[2])
        width, height = (96, round(96 * h / w)) if w >= h else (round(96 * w / h), 96)
    colour = (40 + 50 * index % 200, 90, 160)
    return kit.picture((width, height), colour, f"{prompt[:10]} {index + 1}", fmt, at=(4, 4))


_FAILURES: Mapping[Switch, str] = {
    Switch.MODERATE: "The input or output was flagged as sensitive. Please try again with "
    "different inputs. (E005)",
    Switch.NSFW: "NSFW content detected. Try running it again, or try a different prompt.",
    Switch.FAIL: "Prediction failed: the model crashed while loading weights",
}
"""The error a finished prediction fails with when the prompt asks for it."""
_CREATE_REFUSALS: Mapping[Switch, Callable[[], Response]] = {
    Switch.RATE_LIMIT: lambda: _problem(
        429, "Request was throttled", "Request was throttled. Your rate limit resets in ~30s."
    ),
    Switch.SERVER_ERROR: lambda: _problem(500, "Internal Server Error", "Internal server error"),
}
_DELIVERY = "/delivery/"
"""Where output files are served, as ``<prediction id>/out-<n>.<ext>``."""


def create_app(*, token: str = "r8_test_token") -> FastAPI:
    app = FastAPI(title="fake Replicate")
    ids = (f"fk{n:024x}" for n in itertools.count(0xC0FFEE))
    app.state.predictions = predictions = kit.TaskBook(_Prediction, slow_polls=3, ids=ids)
    shelf = kit.ImageShelf()
    kit.record_requests(
        app,
        authenticate=kit.require_key(
            f"Bearer {token}",
            missing=lambda: _problem(
                401, "Unauthenticated", "You did not pass a valid authentication token"
            ),
        ),
        guarded=lambda path: path.startswith("/v1/"),
    )

    def describe(prediction: _Prediction, base: str) -> dict[str, Any]:
        done = prediction.status in ("succeeded", "failed", "canceled")
        output: Any = None
        if prediction.status == "succeeded":
            urls = [f"{base}{path}" for path in prediction.outputs]
            output = urls if len(urls) > 1 or prediction.model.startswith("openai/") else urls[0]
        return {
            "id": prediction.id,
            "model": prediction.model,
            "version": prediction.version,
            "input": prediction.input,
            "logs": prediction.logs,
            "output": output,
            "data_removed": False,
            "error": prediction.error,
            "status": prediction.status,
            "source": "api",
            "created_at": "2026-01-01T00:00:00.000000Z",
            "started_at": None if prediction.status == "starting" else "2026-01-01T00:00:01Z",
            "completed_at": "2026-01-01T00:00:09Z" if done else None,
            "metrics": {"predict_time": 8.0} if done else {},
            "urls": {
                "get": f"{base}/v1/predictions/{prediction.id}",
                "cancel": f"{base}/v1/predictions/{prediction.id}/cancel",
                "web": f"https://replicate.com/p/{prediction.id}",
            },
        }

    def advance(prediction: _Prediction) -> None:
        if prediction.status not in ("starting", "processing"):
            return
        if not prediction.poll():
            prediction.status = "processing"
            prediction.logs += (
                f"{prediction.percent}%|████      | {prediction.polls}/{prediction.polls_needed}\n"
            )
            return
        prompt = str(prediction.input.get("prompt"))
        prediction.error = kit.pick(prompt, _FAILURES)
        if prediction.error:
            prediction.status = "failed"
            return
        count = next(
            (int(prediction.input[k]) for k in _COUNT_INPUTS if prediction.input.get(k)), 1
        )
        fmt_name = str(prediction.input.get("output_format") or "png")
        fmt, content_type = _FORMATS.get(fmt_name, _FORMATS["png"])
        ratio = prediction.input.get("aspect_ratio")
        extension = "jpg" if fmt == "JPEG" else fmt.lower()
        for n in range(count):
            path = f"{_DELIVERY}{prediction.id}/out-{n}.{extension}"
            data = _render(prompt, n, ratio, fmt)
            shelf.put(path, data, content_type, once=Switch.EXPIRE_FAST in prompt)
            prediction.outputs.append(path)
        prediction.status = "succeeded"

    async def create(request: Request, model: str, version: str) -> Response:
        try:
            payload = await request.json()
        except ValueError:
            return _problem(400, "Bad request", "Request body is not valid JSON")
        prefer = request.headers.get("prefer")
        if prefer is not None and not _PREFER.fullmatch(prefer):
            return _problem(400, "Invalid Prefer header", f"Invalid Prefer header: {prefer}")
        if not isinstance(payload, dict):
            return _problem(422, "Invalid request", "The request body must be a JSON object")
        fields = _ENVELOPE | ({"version"} if version != "hidden" else set())
        if unknown := sorted(set(payload) - fields):
            return _problem(
                422, "Invalid request", f"Additional properties are not allowed: {unknown}"
            )
        events = payload.get("webhook_events_filter")
        if events is not None and (
            not isinstance(events, list) or not set(events) <= _WEBHOOK_EVENTS
        ):
            return _problem(
                422,
                "Invalid request",
                f"webhook_events_filter items must be one of {sorted(_WEBHOOK_EVENTS)}",
            )
        model_input = payload.get("input")
        if not isinstance(model_input, dict):
            return _problem(422, "Input validation failed", "- input: input is required")
        invalid = []
        if not isinstance(model_input.get("prompt"), str) or not model_input["prompt"]:
            invalid.append(("prompt", "prompt is required"))
        for name, allowed in _MODELS.get(model, {}).items():
            value = model_input.get(name)
            if value is not None and value not in allowed:
                quoted = ", ".join(f"'{a}'" for a in allowed)
                invalid.append((name, f"{name} must be one of the following: {quoted}"))
        if invalid:
            return _problem(
                422,
                "Input validation failed",
                "\n".join(f"- input.{name}: {text}" for name, text in invalid),
                invalid_fields=[
                    {"type": "enum", "field": f"input.{name}", "description": text}
                    for name, text in invalid
                ],
            )
        prompt = model_input["prompt"]
        if (refused := kit.steer(prompt, _CREATE_REFUSALS)) is not None:
            return refused
        prediction = predictions.open(prompt, model=model, version=version, input=model_input)
        if prefer is not None and prediction.polls_needed == 1:
            advance(prediction)
        return JSONResponse(describe(prediction, kit.base_url(request)), 201)

    @app.post("/v1/models/{owner}/{name}/predictions")
    async def create_official(owner: str, name: str, request: Request) -> Response:
        model = f"{owner}/{name}"
        if model not in _MODELS:
            return _problem(404, "Not found", "The requested resource could not be found.")
        return await create(request, model, "hidden")

    @app.post("/v1/predictions")
    async def create_version(request: Request) -> Response:
        payload = json.loads(await request.body() or b"{}")
        version = str(payload.get("version") or "")
        model, _, version_id = version.partition(":")
        if model not in _MODELS or not version_id:
            return _problem(422, "Invalid version", f"Invalid version or not permitted: {version}")
        return await create(request, model, version_id)

    @app.get("/v1/predictions/{prediction_id}")
    async def get(prediction_id: str, request: Request) -> Response:
        prediction = predictions.get(prediction_id)
        if prediction is None:
            return _problem(404, "Not found", "The requested resource could not be found.")
        advance(prediction)
        return JSONResponse(describe(prediction, kit.base_url(request)))

    @app.post("/v1/predictions/{prediction_id}/cancel")
    async def cancel(prediction_id: str, request: Request) -> Response:
        prediction = predictions.get(prediction_id)
        if prediction is None:
            return _problem(404, "Not found", "The requested resource could not be found.")
        if prediction.status in ("starting", "processing"):
            prediction.status = "canceled"
        return JSONResponse(describe(prediction, kit.base_url(request)))

    shelf.serve(app, _DELIVERY)
    return app
