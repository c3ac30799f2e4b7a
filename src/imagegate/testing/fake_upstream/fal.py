"""A fake fal.ai queue (``queue.fal.run``), faithful to the documented queue protocol.

- ``POST /{endpoint_id}`` (any depth, e.g. ``fal-ai/flux-pro/v1.1-ultra``) with
  ``Authorization: Key <key>`` → ``{status: "IN_QUEUE", request_id, response_url, status_url,
  cancel_url, queue_position}``. As on fal, the returned URLs keep only ``{owner}/{alias}``.
- ``GET /{owner}/{alias}/requests/{id}/status`` → 202 ``IN_QUEUE`` (``queue_position``) /
  ``IN_PROGRESS`` (``logs``), 200 ``COMPLETED``; unknown id → 404.
- ``GET /{owner}/{alias}/requests/{id}`` → the model output ``{images: [{url, content_type,
  file_name, file_size, width, height}], seed, has_nsfw_concepts, prompt, timings}``, or the
  model's error (422 ``{detail: [{loc, msg, type}]}``); 400 while still running.
- ``PUT …/requests/{id}/cancel`` → 202 ``CANCELLATION_REQUESTED`` or 400 ``ALREADY_COMPLETED``.
- A missing or wrong key → 401 ``{detail}``. Images are real PNG/JPEG/WebP files at ``/files/…``.
- An app in ``RETIRED_APPS`` (a model its vendor shut down) → 404, like an unknown app.

Input is validated when the request runs, like fal's workers: ``prompt`` required,
``image_size`` a known name or ``{width, height}``, ``output_format`` jpeg/png/webp,
``num_images`` 1–4. Prompt switches (see ``kit``): at submit ``rate-limit-me``,
``server-error``; when the request runs ``moderate-me``, ``nsfw-me``; ``slow`` (one queued and
two in-progress polls with percentage logs).

``app.state.requests`` records every request (method, path, query, headers, JSON body);
``app.state.jobs`` holds the queued requests by id.
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

from imagegate.testing.fake_upstream import kit
from imagegate.testing.fake_upstream.kit import Switch

__all__ = ["create_app"]

_SIZES = {
    "square_hd": (128, 128),
    "square": (64, 64),
    "portrait_4_3": (96, 128),
    "portrait_16_9": (72, 128),
    "landscape_4_3": (128, 96),
    "landscape_16_9": (128, 72),
    "auto_2K": (128, 128),
    "auto_4K": (128, 128),
    "1024x1024": (128, 128),
    "1536x1024": (128, 85),
    "1024x1536": (85, 128),
    "auto": (128, 128),
}
RETIRED_APPS = frozenset({"fal-ai/imagen4"})
"""Apps proxying models their vendor shut down (Google's Imagen)."""
_RATIO = re.compile(r"^(\d+):(\d+)$")
_FILES = "/files/"
"""Where result images are served, as ``<request id>/<n>.<ext>``."""
_FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"),
            "webp": ("WEBP", "image/webp")}  # fmt: skip


@dataclass(kw_only=True)
class _Job(kit.Task):
    endpoint: str
    owner_alias: str
    input: dict[str, Any]
    status: str = "IN_QUEUE"
    logs: list[dict[str, Any]] = field(default_factory=list)
    result: tuple[int, dict[str, Any]] | None = None


def _validate(body: dict[str, Any]) -> list[dict[str, Any]]:
    errors = []

    def error(loc: str, msg: str, kind: str) -> None:
        errors.append({"loc": ["body", loc], "msg": msg, "type": kind})

    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        error("prompt", "field required", "value_error.missing")
    size = body.get("image_size")
    if size is not None and not (
        (isinstance(size, str) and size in _SIZES)
        or (isinstance(size, dict) and isinstance(size.get("width"), int)
            and isinstance(size.get("height"), int))
    ):  # fmt: skip
        error("image_size", f"value is not a valid image size: {size!r}", "value_error")
    fmt = body.get("output_format")
    if fmt is not None and fmt not in _FORMATS:
        error("output_format", "unexpected value; permitted: 'jpeg', 'png', 'webp'", "enum")
    count = body.get("num_images")
    if count is not None and not (isinstance(count, int) and 1 <= count <= 4):
        error("num_images", "ensure this value is less than or equal to 4", "value_error")
    return errors


def _size(body: dict[str, Any]) -> tuple[int, int]:
    size = body.get("image_size")
    if isinstance(size, dict):
        scale = 128 / max(size["width"], size["height"])
        return max(16, round(size["width"] * scale)), max(16, round(size["height"] * scale))
    if isinstance(size, str):
        return _SIZES[size]
    ratio = body.get("aspect_ratio")
    if isinstance(ratio, str) and (match := _RATIO.match(ratio)):
        w, h = int(match[1]), int(match[2])
        return (128, round(128 * h / w)) if w >= h else (round(128 * w / h), 128)
    return 128, 128


def _authenticate(key: str) -> Callable[[Request], Response | None]:
    def authenticate(request: Request) -> Response | None:
        auth = request.headers.get("authorization")
        app_id = "/".join(request.url.path.strip("/").split("/")[:2])
        if auth is None:
            return JSONResponse(
                {"detail": f"Cannot access application '{app_id}'. Authentication is "
                           "required to access this application."},
                401,
            )  # fmt: skip
        if auth != f"Key {key}":
            return JSONResponse({"detail": "Invalid API key"}, 401)
        return None

    return authenticate


_SUBMIT_REFUSALS: Mapping[Switch, Callable[[], Response]] = {
    Switch.RATE_LIMIT: lambda: JSONResponse(
        {"detail": "Rate limit exceeded. Too many concurrent requests."}, 429, {"Retry-After": "5"}
    ),
    Switch.SERVER_ERROR: lambda: JSONResponse({"detail": "Internal server error"}, 500),
}


def create_app(*, key: str = "fal_test_key") -> FastAPI:
    app = FastAPI(title="fake fal queue")
    ids = (f"0192a7c4-0000-7000-8000-{n:012x}" for n in itertools.count(1))
    app.state.jobs = jobs = kit.TaskBook(_Job, slow_polls=3, ids=ids)
    shelf = kit.ImageShelf()
    kit.record_requests(
        app, authenticate=_authenticate(key), guarded=lambda path: not path.startswith(_FILES)
    )

    def run(job: _Job, base: str) -> None:
        """The worker: validate the input and produce the output (or the model's error)."""
        errors = _validate(job.input)
        prompt = str(job.input.get("prompt") or "")
        if not errors and Switch.MODERATE in prompt:
            errors = [{
                "loc": ["body", "prompt"],
                "msg": "The content could not be processed because it contained material "
                       "flagged by a content checker.",
                "type": "content_policy_violation",
                "url": "https://docs.fal.ai/errors#content_policy_violation",
            }]  # fmt: skip
        if errors:
            job.result = (422, {"detail": errors})
            return
        nsfw = Switch.NSFW in prompt
        fmt, content_type = _FORMATS[str(job.input.get("output_format") or "png")]
        width, height = _size(job.input)
        images = []
        for n in range(int(job.input.get("num_images") or 1)):
            colour = (0, 0, 0) if nsfw else (60 + 40 * n, 120, 200)
            data = kit.picture((width, height), colour, fmt=fmt)
            extension = "jpg" if fmt == "JPEG" else fmt.lower()
            path = shelf.put(f"{_FILES}{job.id}/{n}.{extension}", data, content_type)
            images.append({
                "url": f"{base}{path}", "content_type": content_type,
                "file_name": f"{n}.{extension}", "file_size": len(data),
                "width": width, "height": height,
            })  # fmt: skip
        job.result = (200, {
            "images": images, "seed": 42, "has_nsfw_concepts": [nsfw] * len(images),
            "prompt": prompt, "timings": {"inference": 1.2},
        })  # fmt: skip

    def advance(job: _Job, base: str) -> None:
        if job.status == "COMPLETED":
            return
        if job.poll():
            job.status = "COMPLETED"
            run(job, base)
        elif job.polls > 1:
            job.status = "IN_PROGRESS"
            job.logs.append({"message": f"{job.percent}%|███   | step {job.polls}",
                             "level": "INFO", "source": "user",
                             "timestamp": "2026-01-01T00:00:01.000000"})  # fmt: skip

    def status_body(job: _Job, with_logs: bool) -> dict[str, Any]:
        urls = f"/{job.owner_alias}/requests/{job.id}"
        body: dict[str, Any] = {"status": job.status, "request_id": job.id,
                                "response_url": urls, "status_url": f"{urls}/status",
                                "cancel_url": f"{urls}/cancel",
                                "logs": job.logs if with_logs else None}  # fmt: skip
        if job.status == "IN_QUEUE":
            body["queue_position"] = 0
        if job.status == "COMPLETED":
            body["metrics"] = {"inference_time": 1.2}
        return body

    def find(owner: str, alias: str, request_id: str) -> _Job | None:
        job = jobs.get(request_id)
        return job if job is not None and job.owner_alias == f"{owner}/{alias}" else None

    def not_found() -> JSONResponse:
        return JSONResponse({"detail": "Request not found"}, 404)

    @app.get("/{owner}/{alias}/requests/{request_id}/status")
    async def status(owner: str, alias: str, request_id: str, request: Request) -> Response:
        job = find(owner, alias, request_id)
        if job is None:
            return not_found()
        base = kit.base_url(request)
        advance(job, base)
        body = status_body(job, request.query_params.get("logs") == "1")
        body = {k: (f"{base}{v}" if k.endswith("_url") else v) for k, v in body.items()}
        return JSONResponse(body, 200 if job.status == "COMPLETED" else 202)

    @app.get("/{owner}/{alias}/requests/{request_id}")
    async def result(owner: str, alias: str, request_id: str) -> Response:
        job = find(owner, alias, request_id)
        if job is None:
            return not_found()
        if job.result is None:
            return JSONResponse({"detail": "Request is still in progress"}, 400)
        return JSONResponse(job.result[1], job.result[0])

    @app.put("/{owner}/{alias}/requests/{request_id}/cancel")
    async def cancel(owner: str, alias: str, request_id: str) -> Response:
        job = find(owner, alias, request_id)
        if job is None:
            return not_found()
        if job.status == "COMPLETED":
            return JSONResponse({"status": "ALREADY_COMPLETED"}, 400)
        job.status = "COMPLETED"
        job.result = (499, {"detail": "Request was cancelled"})
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, 202)

    shelf.serve(app, _FILES)

    @app.post("/{endpoint_id:path}")
    async def submit(endpoint_id: str, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"detail": "Invalid JSON body"}, 400)
        if not isinstance(body, dict):
            return JSONResponse({"detail": "Request body must be a JSON object"}, 422)
        prompt = str(body.get("prompt") or "")
        if (refused := kit.steer(prompt, _SUBMIT_REFUSALS)) is not None:
            return refused
        parts = endpoint_id.strip("/").split("/")
        if len(parts) < 2 or "/".join(parts[:2]) in RETIRED_APPS:
            return JSONResponse({"detail": "Application not found"}, 404)
        job = jobs.open(prompt, endpoint=endpoint_id, owner_alias="/".join(parts[:2]), input=body)
        base = kit.base_url(request)
        answer = status_body(job, False)
        answer = {k: (f"{base}{v}" if k.endswith("_url") else v) for k, v in answer.items()}
        return JSONResponse(answer)

    return app
