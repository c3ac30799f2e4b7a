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
``output_format`` against its enum. Prompt words steer it: ``moderate-me`` → the prediction fails
with the E005 "flagged as sensitive" error, ``nsfw-me`` → flux's "NSFW content detected",
``fail-me`` → a plain failure, ``rate-limit-me`` → 429 throttled with ``Retry-After: 30``,
``server-error`` → 500, ``slow`` → three ``processing`` polls with tqdm progress in ``logs``,
``expire-fast`` → each output file is deleted right after its first download (Replicate deletes
outputs after an hour; this makes "the worker downloaded it at once" observable), so a second
fetch is a 404 like an expired ``replicate.delivery`` URL.

``app.state.requests`` records every request (method, path, headers, JSON body).
"""

from __future__ import annotations

import io
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from PIL import Image, ImageDraw

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
    "ideogram-ai/ideogram-v3-turbo": {"aspect_ratio": _IDEOGRAM_RATIOS},
    "ideogram-ai/ideogram-v3-balanced": {"aspect_ratio": _IDEOGRAM_RATIOS},
    "ideogram-ai/ideogram-v3-quality": {"aspect_ratio": _IDEOGRAM_RATIOS},
    "ideogram-ai/ideogram-v2": {"aspect_ratio": _IDEOGRAM_RATIOS},
    "ideogram-ai/ideogram-v2-turbo": {"aspect_ratio": _IDEOGRAM_RATIOS},
    "ideogram-ai/ideogram-v2a": {"aspect_ratio": _IDEOGRAM_RATIOS},
    "ideogram-ai/ideogram-v2a-turbo": {"aspect_ratio": _IDEOGRAM_RATIOS},
    "ideogram-ai/ideogram-character": {"aspect_ratio": _IDEOGRAM_RATIOS},
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


@dataclass
class _Prediction:
    id: str
    model: str
    version: str
    input: dict[str, Any]
    polls_needed: int
    status: str = "starting"
    polls: int = 0
    error: str | None = None
    logs: str = ""
    outputs: list[str] = field(default_factory=list)


def _render(prompt: str, index: int, ratio: str | None, fmt: str) -> bytes:
    width, height = 96, 96
    if ratio and (match := _RATIO.match(ratio)):
        w, h = int(match[1]), int(match[2])
        width, height = (96, round(96 * h / w)) if w >= h else (round(96 * w / h), 96)
    colour = (40 + 50 * index % 200, 90, 160)
    image = Image.new("RGB", (width, height), colour)
    ImageDraw.Draw(image).text((4, 4), f"{prompt[:10]} {index + 1}", fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def create_app(*, token: str = "r8_test_token") -> FastAPI:
    app = FastAPI(title="fake Replicate")
    predictions: dict[str, _Prediction] = {}
    files: dict[str, tuple[bytes, str]] = {}
    expiring: set[str] = set()
    requests: list[dict[str, Any]] = []
    ids = (f"fk{n:024x}" for n in itertools.count(0xC0FFEE))
    app.state.requests = requests
    app.state.predictions = predictions

    @app.middleware("http")
    async def record_and_authorize(request: Request, call_next: Any) -> Response:
        body = await request.body()
        requests.append({
            "method": request.method,
            "path": request.url.path,
            "headers": dict(request.headers),
            "json": json.loads(body) if body else None,
        })  # fmt: skip
        if request.url.path.startswith("/v1/") and (
            request.headers.get("authorization") != f"Bearer {token}"
        ):
            return _problem(401, "Unauthenticated", "You did not pass a valid authentication token")
        response: Response = await call_next(request)
        return response

    def describe(prediction: _Prediction, base: str) -> dict[str, Any]:
        done = prediction.status in ("succeeded", "failed", "canceled")
        output: Any = None
        if prediction.status == "succeeded":
            urls = [f"{base}/delivery/{name}" for name in prediction.outputs]
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
        prediction.polls += 1
        if prediction.polls < prediction.polls_needed:
            prediction.status = "processing"
            percent = 100 * prediction.polls // prediction.polls_needed
            prediction.logs += (
                f"{percent}%|████      | {prediction.polls}/{prediction.polls_needed}\n"
            )
            return
        prompt = str(prediction.input.get("prompt"))
        if "moderate-me" in prompt:
            prediction.error = (
                "The input or output was flagged as sensitive. Please try again with different "
                "inputs. (E005)"
            )
        elif "nsfw-me" in prompt:
            prediction.error = (
                "NSFW content detected. Try running it again, or try a different prompt."
            )
        elif "fail-me" in prompt:
            prediction.error = "Prediction failed: the model crashed while loading weights"
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
            name = f"{prediction.id}/out-{n}.{extension}"
            files[name] = (_render(prompt, n, ratio, fmt), content_type)
            prediction.outputs.append(name)
            if "expire-fast" in prompt:
                expiring.add(name)
        prediction.status = "succeeded"

    async def create(request: Request, model: str, version: str) -> Response:
        try:
            payload = await request.json()
        except ValueError:
            return _problem(400, "Bad request", "Request body is not valid JSON")
        prefer = request.headers.get("prefer")
        if prefer is not None and not re.fullmatch(r"wait(=([1-9]|[1-9][0-9]|60))?", prefer):
            return _problem(400, "Invalid Prefer header", f"Invalid Prefer header: {prefer}")
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
        if "rate-limit-me" in prompt:
            return _problem(
                429,
                "Request was throttled",
                "Request was throttled. Your rate limit resets in ~30s.",
            )
        if "server-error" in prompt:
            return _problem(500, "Internal Server Error", "Internal server error")
        prediction = _Prediction(
            id=next(ids),
            model=model,
            version=version,
            input=model_input,
            polls_needed=4 if "slow" in prompt else 1,
        )
        predictions[prediction.id] = prediction
        if prefer is not None and prediction.polls_needed == 1:
            advance(prediction)
        return JSONResponse(describe(prediction, str(request.base_url).rstrip("/")), 201)

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
        return JSONResponse(describe(prediction, str(request.base_url).rstrip("/")))

    @app.post("/v1/predictions/{prediction_id}/cancel")
    async def cancel(prediction_id: str, request: Request) -> Response:
        prediction = predictions.get(prediction_id)
        if prediction is None:
            return _problem(404, "Not found", "The requested resource could not be found.")
        if prediction.status in ("starting", "processing"):
            prediction.status = "canceled"
        return JSONResponse(describe(prediction, str(request.base_url).rstrip("/")))

    @app.get("/delivery/{prediction_id}/{name}")
    async def delivery(prediction_id: str, name: str) -> Response:
        key = f"{prediction_id}/{name}"
        found = files.pop(key, None) if key in expiring else files.get(key)
        if found is None:
            return Response(status_code=404)
        return Response(found[0], media_type=found[1])

    return app
