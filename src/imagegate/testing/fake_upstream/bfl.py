"""A fake Black Forest Labs API: the FLUX submit endpoints, ``/v1/get_result`` and result samples.

It speaks BFL's documented protocol: ``x-key`` auth (401 ``{"detail": …}`` otherwise), FastAPI
validation of each endpoint's input schema (422 ``{"detail": [{"loc", "msg", "type"}]}``),
``{id, polling_url}`` submit answers, ``ResultResponse`` polls with the statuses ``Pending``,
``Ready``, ``Request Moderated``, ``Content Moderated``, ``Error`` and ``Task not found``, and a
signed ``result.sample`` URL served by the fake itself (a real image rendered with Pillow).

Prompt switches (see ``kit``): at submit ``rate-limit-me``, ``server-error``, ``no-credits``; at
poll ``slow``, ``moderate-me``, ``moderate-output``, ``fail-me``; ``expire-fast`` on the sample
(BFL's signed URLs die after ten minutes). An expired or badly signed sample answers 403
``AuthenticationFailed``, as BFL's blob storage does.

Options: ``api_key`` (default ``bfl_test_key``), ``polling_base`` (the host put in
``polling_url``, to imitate a regional host; default: the host the submit was sent to),
``retry_after`` (seconds, default 7), ``max_side`` (rendered images are scaled to it, default 256).
``app.state.requests`` records every request received (method, path, headers, query, JSON body).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from imagegate.providers.sandbox import render
from imagegate.testing.fake_upstream import kit
from imagegate.testing.fake_upstream.kit import Switch

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


@dataclass(kw_only=True)
class _Task(kit.Task):
    endpoint: str
    body: Any


_OUTCOMES: Mapping[Switch, Callable[[], dict[str, Any]]] = {
    Switch.MODERATE: lambda: {
        "status": "Request Moderated",
        "details": {"Moderation Reasons": ["Derivative Works Filter"]},
    },
    Switch.MODERATE_OUTPUT: lambda: {
        "status": "Content Moderated",
        "details": {"Moderation Reasons": ["NSFW"]},
    },
    Switch.FAIL: lambda: {"status": "Error", "error": "Generation failed: internal_error"},
}
"""How a finished task ends when the prompt asks for a failure."""
_DENIED = "<Error><Code>AuthenticationFailed</Code></Error>"


def create_app(**options: Any) -> FastAPI:
    api_key = str(options.get("api_key", "bfl_test_key"))
    polling_base = options.get("polling_base")
    retry_after = int(options.get("retry_after", 7))
    max_side = int(options.get("max_side", 256))

    app = FastAPI(title="fake BFL API")
    app.state.tasks = tasks = kit.TaskBook(_Task, slow_polls=3)
    shelf = kit.ImageShelf()
    kit.record_requests(
        app,
        authenticate=kit.require_key(
            api_key, header="x-key", missing=lambda: JSONResponse(_UNAUTHENTICATED, 401)
        ),
        guarded=lambda path: path.startswith("/v1/"),
    )

    refusals: Mapping[Switch, Callable[[], Response]] = {
        Switch.RATE_LIMIT: lambda: JSONResponse(
            {"detail": "You have exceeded the number of active tasks (24). Retry later."},
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        ),
        Switch.SERVER_ERROR: lambda: JSONResponse({"detail": "Internal Server Error"}, 500),
        Switch.NO_CREDITS: lambda: JSONResponse({"detail": "Insufficient credits"}, 402),
    }

    def signature(task_id: str) -> str:
        return hashlib.sha256(f"{task_id}:{api_key}".encode()).hexdigest()[:32]

    def submit(endpoint: str, body: BaseModel, request: Request) -> Response:
        prompt = str(getattr(body, "prompt", "") or "")
        if (refused := kit.steer(prompt, refusals)) is not None:
            return refused
        task = tasks.open(prompt, endpoint=endpoint, body=body)
        base = str(polling_base or kit.base_url(request)).rstrip("/")
        return JSONResponse({"id": task.id, "polling_url": f"{base}/v1/get_result?id={task.id}"})

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
        task = tasks.get(id)
        if task is None:
            return JSONResponse({"id": id, "status": "Task not found"})
        finishing = task.poll()
        if not task.finished:
            progress = task.polls / task.polls_needed
            return JSONResponse({"id": id, "status": "Pending", "progress": progress})
        if (failure := kit.steer(task.prompt, _OUTCOMES)) is not None:
            return JSONResponse({"id": id, **failure})
        body = task.body
        fmt = body.output_format or "jpeg"
        seed = body.seed if body.seed is not None else 42
        path = f"/results/{id}/sample.{fmt}"
        if finishing:
            pil_format, content_type = _PIL_FORMATS[fmt]
            size = _size(body)
            data = render(task.prompt, seed, 0, kit.shrunk(size, max_side), pil_format)
            shelf.put(path, data, content_type, once=Switch.EXPIRE_FAST in task.prompt)
        return JSONResponse(
            {
                "id": id,
                "status": "Ready",
                "result": {
                    "sample": f"{shelf.url(request, path)}?se=600&sig={signature(id)}",
                    "prompt": task.prompt,
                    "seed": seed,
                    "start_time": 1_767_225_600.0,
                    "end_time": 1_767_225_610.0,
                    "duration": 10.0,
                },
                "progress": None,
                "details": None,
                "preview": None,
            }
        )

    shelf.serve(
        app,
        "/results/",
        missing=lambda: Response(_DENIED, status_code=403, media_type="application/xml"),
        guard=lambda request: (
            request.query_params.get("sig", "") == signature(request.url.path.split("/")[2])
        ),
    )
    return app
