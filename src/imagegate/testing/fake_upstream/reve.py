"""A fake Reve API: ``POST /v1/image/create``, answering JSON with one base64 PNG.

It checks what Reve checks — the Bearer token, ``prompt`` (1–2560 characters), the
``aspect_ratio`` enum (default ``3:2``), ``version`` (``latest`` or ``reve-create@…``),
``test_time_scaling`` 1–15, ``postprocessing`` steps with a ``process`` key, unknown fields — and
answers ``{"image", "version", "content_violation", "request_id", "credits_used",
"credits_remaining"}`` plus the ``X-Reve-*`` headers, or ``{"error_code", "message"}`` with
``X-Reve-Error-Code``. Images are drawn by Pillow at 1/``scale`` of Reve's output size.

The prompt steers it: ``moderate-me`` → 200 with ``content_violation: true`` and no image,
``rate-limit-me`` → 429 ``RATE_LIMIT`` with ``Retry-After``, ``broke-me`` → 402
``INSUFFICIENT_CREDITS``, ``server-error`` → 500. Every request is appended to
``app.state.requests``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from imagegate.providers.sandbox import render

__all__ = ["RecordedRequest", "create_app"]

PINNED_VERSION = "reve-create@20250915"
ASPECT_RATIOS = {
    "16:9": (16, 9),
    "9:16": (9, 16),
    "3:2": (3, 2),
    "2:3": (2, 3),
    "4:3": (4, 3),
    "3:4": (3, 4),
    "1:1": (1, 1),
}
PROCESSES = frozenset({"upscale", "remove_background", "fit_image", "effect"})
MAX_PROMPT = 2560
_FIELDS = {"prompt", "aspect_ratio", "version", "test_time_scaling", "postprocessing"}
_CREDITS_PER_IMAGE = 18


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    json: Any = None


class ReveError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error_code": self.code, "message": self.message},
            status_code=self.status,
            headers={"X-Reve-Error-Code": self.code, **self.headers},
        )


def _invalid(message: str) -> ReveError:
    return ReveError(400, "INVALID_PARAMETER_VALUE", message)


def validate(body: Any) -> None:
    if not isinstance(body, dict):
        raise _invalid("Request body must be a JSON object")
    for name in body:
        if name not in _FIELDS:
            raise _invalid(f"Unknown parameter: {name}")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ReveError(400, "MISSING_PARAMETER", "Prompt is required")
    if len(prompt) > MAX_PROMPT:
        raise ReveError(
            400, "PROMPT_TOO_LONG", f"Prompt exceeds maximum length of {MAX_PROMPT} characters"
        )
    if "aspect_ratio" in body and body["aspect_ratio"] not in ASPECT_RATIOS:
        choices = ", ".join(ASPECT_RATIOS)
        raise _invalid(f"Invalid aspect_ratio: {body['aspect_ratio']!r}. Must be one of {choices}")
    version = body.get("version", "latest")
    if not isinstance(version, str) or not (
        version == "latest" or version.startswith("reve-create@")
    ):
        raise _invalid(f"Invalid version: {version!r}")
    scaling = body.get("test_time_scaling", 1)
    if not isinstance(scaling, int) or isinstance(scaling, bool) or not 1 <= scaling <= 15:
        raise _invalid("test_time_scaling must be a number between 1 and 15")
    steps = body.get("postprocessing", [])
    if not isinstance(steps, list) or not all(isinstance(step, dict) for step in steps):
        raise _invalid("postprocessing must be an array of objects")
    for index, step in enumerate(steps):
        if step.get("process") not in PROCESSES:
            raise _invalid(f"Postprocessing step at index {index} has an unknown 'process'")


class FakeReve:
    def __init__(self, api_key: str, retry_after: int, scale: int, credits: int) -> None:
        self.api_key = api_key
        self.retry_after = retry_after
        self.scale = scale
        self.credits = credits
        self.requests: list[RecordedRequest] = []

    def authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer ") or header[7:].strip() != self.api_key:
            raise ReveError(401, "INVALID_API_KEY", "Invalid API key")

    def steer(self, prompt: str) -> None:
        if "rate-limit-me" in prompt:
            raise ReveError(
                429,
                "RATE_LIMIT",
                "Rate limit exceeded",
                headers={"Retry-After": str(self.retry_after)},
            )
        if "broke-me" in prompt:
            raise ReveError(402, "INSUFFICIENT_CREDITS", "Your budget has run out")
        if "server-error" in prompt:
            raise ReveError(500, "INTERNAL_ERROR", "An internal error occurred")

    def answer(self, body: dict[str, Any]) -> JSONResponse:
        prompt: str = body["prompt"]
        self.steer(prompt)
        violation = "moderate-me" in prompt
        image = ""
        if not violation:
            ratio_w, ratio_h = ASPECT_RATIOS[body.get("aspect_ratio", "3:2")]
            upscale = 1
            for step in body.get("postprocessing", []):
                if step["process"] == "upscale":
                    upscale *= int(step.get("upscale_factor", 2))
            unit = 1024 * upscale / self.scale / max(ratio_w, ratio_h)
            size = (round(ratio_w * unit), round(ratio_h * unit))
            seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big")
            image = base64.b64encode(render(prompt, seed, 0, size, "PNG")).decode()
        used = _CREDITS_PER_IMAGE * int(body.get("test_time_scaling", 1))
        self.credits -= used
        version = body.get("version", "latest")
        version = PINNED_VERSION if version == "latest" else version
        request_id = f"rsid-{uuid.uuid4()}"
        result = {
            "image": image,
            "version": version,
            "content_violation": violation,
            "request_id": request_id,
            "credits_used": used,
            "credits_remaining": self.credits,
        }
        headers = {
            "X-Reve-Version": version,
            "X-Reve-Content-Violation": str(violation).lower(),
            "X-Reve-Request-Id": request_id,
            "X-Reve-Credits-Used": str(used),
            "X-Reve-Credits-Remaining": str(self.credits),
        }
        return JSONResponse(result, headers=headers)


def create_app(
    *, api_key: str = "papi.fake-reve", retry_after: int = 30, scale: int = 8, credits: int = 10_000
) -> FastAPI:
    """The fake; ``scale`` shrinks rendered images so tests stay fast."""
    fake = FakeReve(api_key, retry_after, scale, credits)
    app = FastAPI(title="fake Reve API")
    app.state.fake = fake
    app.state.requests = fake.requests

    @app.post("/v1/image/create")
    async def create(request: Request) -> Response:
        entry = RecordedRequest(
            request.method, request.url.path, dict(request.headers), dict(request.query_params)
        )
        fake.requests.append(entry)
        try:
            fake.authenticate(request)
            try:
                entry.json = json.loads(await request.body())
            except ValueError as exc:
                raise _invalid("Request body is not valid JSON") from exc
            validate(entry.json)
            return fake.answer(entry.json)
        except ReveError as error:
            return error.response()

    return app
