"""A fake Black Forest Labs API: the FLUX submit endpoints, ``/v1/get_result`` and result samples.

It speaks BFL's documented protocol: ``x-key`` auth (401 ``{"detail": …}`` otherwise), FastAPI
validation of each endpoint's input schema (422 ``{"detail": [{"loc", "msg", "type"}]}``),
``{id, polling_url}`` submit answers, ``ResultResponse`` polls with the statuses ``Pending``,
``Ready``, ``Request Moderated``, ``Content Moderated``, ``Error`` and ``Task not found``, and a
signed ``result.sample`` URL served by the fake itself (a real image rendered with Pillow).

Words in the prompt steer it: ``moderate-me`` → ``Request Moderated``, ``moderate-output`` →
``Content Moderated``, ``rate-limit-me`` → 429 with ``Retry-After``, ``server-error`` → 500,
``no-credits`` → 402, ``fail-me`` → ``Error``, ``slow`` → three ``Pending`` polls with progress,
``expire-fast`` → the result sample expires right after its first download (BFL's signed URLs
die after ten minutes; this makes "the worker downloaded it at once" observable). An expired or
badly signed sample answers 403 ``AuthenticationFailed``, as BFL's blob storage does.

Options: ``api_key`` (default ``bfl_test_key``), ``polling_base`` (the host put in
``polling_url``, to imitate a regional host; default: the host the submit was sent to),
``retry_after`` (seconds, default 7), ``max_side`` (rendered images are scaled to it, default 256).
``app.state.requests`` records every request received (method, path, headers, query, JSON body).
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from imagegate.providers.sandbox import render

__all__ = ["create_app"]

OutputFormat = Literal["jpeg", "png", "webp"]
_PIL_FORMATS = {
    "jpeg": ("JPEG", "image/jpeg"),
    "png": ("PNG", "image/png"),
    "webp": ("WEBP", "image/webp"),
}
_UNAUTHENTICATED = {"detail": "Not authenticated - Invalid Authentication"}


class _Webhook(BaseModel):
    webhook_url: str | None = Field(default=None, min_length=1, max_length=2083)
    webhook_secret: str | None = None


class FluxPro11Inputs(_Webhook):
    prompt: str | None = ""
    image_prompt: str | None = None
    width: int = Field(default=1024, ge=256, le=1440, multiple_of=32)
    height: int = Field(default=768, ge=256, le=1440, multiple_of=32)
    prompt_upsampling: bool = False
    seed: int | None = None
    safety_tolerance: int = Field(default=2, ge=0, le=6)
    output_format: OutputFormat | None = "jpeg"


class FluxUltraInput(_Webhook):
    prompt: str | None = ""
    prompt_upsampling: bool = False
    seed: int | None = None
    aspect_ratio: str = Field(default="16:9", pattern=r"^\d+:\d+$")
    safety_tolerance: int = Field(default=2, ge=0, le=6)
    output_format: OutputFormat | None = "jpeg"
    raw: bool = False
    image_prompt: str | None = None
    image_prompt_strength: float = Field(default=0.1, ge=0, le=1)

    @model_validator(mode="after")
    def _ratio_range(self) -> FluxUltraInput:
        width, height = (int(p) for p in self.aspect_ratio.split(":"))
        if height == 0 or not 9 / 21 <= width / height <= 21 / 9:
            raise ValueError("aspect_ratio must be between 21:9 and 9:21")
        return self


class Flux2Inputs(_Webhook):
    prompt: str
    input_image: str | None = None
    input_image_2: str | None = None
    input_image_3: str | None = None
    input_image_4: str | None = None
    input_image_5: str | None = None
    input_image_6: str | None = None
    input_image_7: str | None = None
    input_image_8: str | None = None
    seed: int | None = None
    width: int | None = Field(default=0)
    height: int | None = Field(default=0)
    safety_tolerance: int = Field(default=2, ge=0, le=5)
    output_format: OutputFormat | None = "jpeg"

    @model_validator(mode="after")
    def _resolution(self) -> Flux2Inputs:
        for side in (self.width or 0, self.height or 0):
            if side and (side < 64 or side % 16):
                raise ValueError("width and height must be multiples of 16, at least 64")
        if (self.width or 0) * (self.height or 0) > 4 * 1024 * 1024:
            raise ValueError("width × height must not exceed 4 megapixels")
        return self


class Flux2FlexInputs(Flux2Inputs):
    prompt_upsampling: bool | None = True
    input_image_blob_path: str | None = None
    guidance: float | None = Field(default=5.0, ge=1.5, le=10)
    steps: int | None = Field(default=50, ge=1, le=50)


class Flux2KleinInputs(_Webhook):
    prompt: str
    input_image: str | None = None
    input_image_2: str | None = None
    input_image_3: str | None = None
    input_image_4: str | None = None
    seed: int | None = None
    width: int | None = Field(default=0)
    height: int | None = Field(default=0)
    safety_tolerance: int = Field(default=2, ge=0, le=5)
    output_format: OutputFormat | None = "jpeg"


def _size(body: BaseModel) -> tuple[int, int]:
    if isinstance(body, FluxUltraInput):
        width, height = (int(p) for p in body.aspect_ratio.split(":"))
        scale = math.sqrt(4_000_000 / (width * height))
        return round(width * scale), round(height * scale)
    width = getattr(body, "width", 0) or 1024
    height = getattr(body, "height", 0) or 1024
    return int(width), int(height)


def _scaled(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(size))
    return max(16, round(size[0] * scale)), max(16, round(size[1] * scale))


def create_app(**options: Any) -> FastAPI:
    api_key = str(options.get("api_key", "bfl_test_key"))
    polling_base = options.get("polling_base")
    retry_after = int(options.get("retry_after", 7))
    max_side = int(options.get("max_side", 256))

    app = FastAPI(title="fake BFL API")
    app.state.requests = []
    app.state.tasks = {}

    @app.middleware("http")
    async def record_and_authenticate(request: Request, call_next: Any) -> Response:
        body = await request.body()
        app.state.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "headers": dict(request.headers),
                "json": _json(body),
            }
        )
        if request.url.path.startswith("/v1/") and request.headers.get("x-key") != api_key:
            return JSONResponse(_UNAUTHENTICATED, status_code=401)
        response: Response = await call_next(request)
        return response

    def submit(endpoint: str, body: BaseModel, request: Request) -> Response:
        prompt = str(getattr(body, "prompt", "") or "")
        if "rate-limit-me" in prompt:
            return JSONResponse(
                {"detail": "You have exceeded the number of active tasks (24). Retry later."},
                status_code=429,
                headers={"Retry-After": str(retry_after)},
            )
        if "server-error" in prompt:
            return JSONResponse({"detail": "Internal Server Error"}, status_code=500)
        if "no-credits" in prompt:
            return JSONResponse({"detail": "Insufficient credits"}, status_code=402)
        task_id = str(uuid.uuid4())
        base = str(polling_base or str(request.base_url)).rstrip("/")
        app.state.tasks[task_id] = {
            "endpoint": endpoint,
            "prompt": prompt,
            "body": body,
            "pending_polls": 3 if "slow" in prompt else 0,
            "polls": 0,
            "downloads": 0,
        }
        return JSONResponse({"id": task_id, "polling_url": f"{base}/v1/get_result?id={task_id}"})

    def register(endpoint: str, model: type[BaseModel]) -> None:
        async def handler(body: BaseModel, request: Request) -> Response:
            return submit(endpoint, body, request)

        # FastAPI validates the body against the annotation: give each endpoint its own schema.
        handler.__annotations__["body"] = model
        app.post(f"/v1/{endpoint}", name=endpoint)(handler)

    for endpoint in ("flux-pro-1.1", "flux-dev"):
        register(endpoint, FluxPro11Inputs)
    register("flux-pro-1.1-ultra", FluxUltraInput)
    for endpoint in ("flux-2-pro", "flux-2-max", "flux-2-pro-preview"):
        register(endpoint, Flux2Inputs)
    register("flux-2-flex", Flux2FlexInputs)
    for endpoint in ("flux-2-klein-4b", "flux-2-klein-9b"):
        register(endpoint, Flux2KleinInputs)

    @app.get("/v1/get_result")
    async def get_result(id: str, request: Request) -> Response:
        task = app.state.tasks.get(id)
        if task is None:
            return JSONResponse({"id": id, "status": "Task not found"})
        task["polls"] += 1
        prompt = task["prompt"]
        if task["polls"] <= task["pending_polls"]:
            progress = task["polls"] / (task["pending_polls"] + 1)
            return JSONResponse({"id": id, "status": "Pending", "progress": progress})
        if "moderate-me" in prompt:
            return JSONResponse(
                {
                    "id": id,
                    "status": "Request Moderated",
                    "details": {"Moderation Reasons": ["Derivative Works Filter"]},
                }
            )
        if "moderate-output" in prompt:
            return JSONResponse(
                {
                    "id": id,
                    "status": "Content Moderated",
                    "details": {"Moderation Reasons": ["NSFW"]},
                }
            )
        if "fail-me" in prompt:
            return JSONResponse(
                {"id": id, "status": "Error", "error": "Generation failed: internal_error"}
            )
        body = task["body"]
        fmt = body.output_format or "jpeg"
        signature = hashlib.sha256(f"{id}:{api_key}".encode()).hexdigest()[:32]
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "id": id,
                "status": "Ready",
                "result": {
                    "sample": f"{base}/results/{id}/sample.{fmt}?se=600&sig={signature}",
                    "prompt": prompt,
                    "seed": body.seed if body.seed is not None else 42,
                    "start_time": 1_767_225_600.0,
                    "end_time": 1_767_225_610.0,
                    "duration": 10.0,
                },
                "progress": None,
                "details": None,
                "preview": None,
            }
        )

    @app.get("/results/{task_id}/sample.{fmt}")
    async def sample(task_id: str, fmt: str, sig: str = "") -> Response:
        task = app.state.tasks.get(task_id)
        expected = hashlib.sha256(f"{task_id}:{api_key}".encode()).hexdigest()[:32]
        expired = task is not None and task["downloads"] and "expire-fast" in task["prompt"]
        if task is None or fmt not in _PIL_FORMATS or sig != expected or expired:
            return Response(
                "<Error><Code>AuthenticationFailed</Code></Error>",
                status_code=403,
                media_type="application/xml",
            )
        task["downloads"] += 1
        body = task["body"]
        pil_format, content_type = _PIL_FORMATS[fmt]
        seed = body.seed if body.seed is not None else 42
        data = render(task["prompt"], seed, 0, _scaled(_size(body), max_side), pil_format)
        return Response(data, media_type=content_type)

    return app


def _json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None
