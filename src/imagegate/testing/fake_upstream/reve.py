"""A fake Reve API: ``POST /v1/image/create``, answering JSON with one base64 PNG.

It checks what Reve checks — the Bearer token, ``prompt`` (1–2560 characters), the
``aspect_ratio`` enum (default ``3:2``), ``version`` (``latest`` or ``reve-create@…``),
``test_time_scaling`` 1–5, ``postprocessing`` steps with a ``process`` key, unknown fields — and
answers ``{"image", "version", "content_violation", "request_id", "credits_used",
"credits_remaining"}`` plus the ``X-Reve-*`` headers, or ``{"error_code", "message"}`` with
``X-Reve-Error-Code``. Images are drawn by Pillow at 1/``scale`` of Reve's output size.

Prompt switches (see ``kit``): ``rate-limit-me``, ``broke-me``, ``server-error``,
``moderate-me``. Every request is appended to ``app.state.requests`` as a ``RecordedRequest``.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from imagegate.providers.sandbox import render
from imagegate.testing.fake_upstream import kit
from imagegate.testing.fake_upstream.kit import RecordedRequest, Switch

__all__ = ["RecordedRequest", "create_app"]

PINNED_VERSION = "reve-create@20250915"
ASPECT_RATIOS = kit.ratios("16:9", "9:16", "3:2", "2:3", "4:3", "3:4", "1:1")
PROCESSES = frozenset({"upscale", "remove_background", "fit_image", "effect"})
MAX_PROMPT = 2560
TEST_TIME_SCALING = (1, 5)
"""The quality factor's range, as Reve's SDK README gives it."""
_FIELDS = {"prompt", "aspect_ratio", "version", "test_time_scaling", "postprocessing"}
_CREDITS_PER_IMAGE = 18


class ReveError(kit.Refusal):
    """Reve's error body ``{"error_code", "message"}``, echoed in ``X-Reve-Error-Code``."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(
            JSONResponse(
                {"error_code": code, "message": message},
                status_code=status,
                headers={"X-Reve-Error-Code": code, **(headers or {})},
            )
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
    if (
        not isinstance(scaling, int)
        or isinstance(scaling, bool)
        or not TEST_TIME_SCALING[0] <= scaling <= TEST_TIME_SCALING[1]
    ):
        low, high = TEST_TIME_SCALING
        raise _invalid(f"test_time_scaling must be a number between {low} and {high}")
    steps = body.get("postprocessing", [])
    if not isinstance(steps, list) or not all(isinstance(step, dict) for step in steps):
        raise _invalid("postprocessing must be an array of objects")
    for index, step in enumerate(steps):
        if step.get("process") not in PROCESSES:
            raise _invalid(f"Postprocessing step at index {index} has an unknown 'process'")


@dataclass
class FakeReve:
    retry_after: int
    scale: int
    credits: int

    def steer(self, prompt: str) -> None:
        kit.refuse(
            prompt,
            {
                Switch.RATE_LIMIT: lambda: ReveError(
                    429,
                    "RATE_LIMIT",
                    "Rate limit exceeded",
                    headers={"Retry-After": str(self.retry_after)},
                ),
                Switch.BROKE: lambda: ReveError(
                    402, "INSUFFICIENT_CREDITS", "Your budget has run out"
                ),
                Switch.SERVER_ERROR: lambda: ReveError(
                    500, "INTERNAL_ERROR", "An internal error occurred"
                ),
            },
        )

    def answer(self, body: dict[str, Any]) -> JSONResponse:
        prompt: str = body["prompt"]
        self.steer(prompt)
        violation = Switch.MODERATE in prompt
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
    fake = FakeReve(retry_after, scale, credits)
    app = FastAPI(title="fake Reve API")
    app.state.fake = fake
    kit.record_requests(
        app,
        view=lambda record: record,
        authenticate=kit.require_key(
            api_key,
            scheme="Bearer",
            missing=lambda: ReveError(401, "INVALID_API_KEY", "Invalid API key").response,
        ),
    )

    @app.post("/v1/image/create")
    async def create(request: Request) -> Response:
        body = kit.recorded(request).json
        if body is None:
            raise _invalid("Request body is not valid JSON")
        validate(body)
        return fake.answer(body)

    return app
