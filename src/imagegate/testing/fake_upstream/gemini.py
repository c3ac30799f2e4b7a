"""A fake Gemini API: ``POST /v1beta/models/{model}:generateContent`` with Google's answers.

Auth is ``x-goog-api-key`` (or ``?key=``): a missing key gets Google's 403 ``PERMISSION_DENIED``,
a wrong one the 400 ``INVALID_ARGUMENT`` with reason ``API_KEY_INVALID`` (Google never answers
401). Bodies are validated like the Gemini API does: ``imageConfig`` accepts only ``aspectRatio``
and ``imageSize`` with Google's values, ``512`` only on the 3.1 flash models, no ``imageSize`` on
the 1K-only ``gemini-2.5-flash-image``; retired ids answer 404 ``is no longer available``.

Images are real PNGs whose shape follows the aspect ratio (longest side 64 × the size tier, so
they stay small). Prompt switches (see ``kit``): ``rate-limit-me``, ``retry-after-me``,
``server-error``, ``overloaded``, ``moderate-me``, ``unsafe-image``, ``no-image``, ``thinking``.

Every request is recorded in ``app.state.requests`` (method, path, query, headers, JSON body).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from imagegate.testing.fake_upstream import kit
from imagegate.testing.fake_upstream.kit import Switch

__all__ = ["create_app"]

API_KEY = "test-gemini-key"
MODELS = frozenset(
    {
        "gemini-2.5-flash-image",
        "gemini-3-pro-image",
        "gemini-3-pro-image-preview",
        "nano-banana-pro-preview",
        "gemini-3.1-flash-image",
        "gemini-3.1-flash-image-preview",
        "gemini-3.1-flash-lite-image",
        "gemini-nano-banana-2.1",
    }
)
RETIRED = frozenset({"imagen-4.0-generate-001", "gemini-2.0-flash-preview-image-generation"})
RATIOS = frozenset({"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"})
"""The ratios every Gemini image model takes (the SDK's ``AspectRatio`` enum)."""
EXTRA_RATIOS = frozenset({"1:4", "4:1", "1:8", "8:1"})
"""The extreme ratios only the 3.1 flash models take."""
_SIZES = {"512": 1, "1K": 2, "2K": 3, "4K": 4}


def _error(
    code: int, status: str, message: str, details: list[dict[str, str]] | None = None
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=code)


def _invalid(message: str) -> JSONResponse:
    return _error(400, "INVALID_ARGUMENT", message)


def _png(ratio: str, tier: int, prompt: str) -> bytes:
    width, height = (float(n) for n in ratio.split(":"))
    return kit.picture(kit.fit((width, height), 64 * tier, floor=8), (30, 120, 200), prompt[:20])


def _missing_key() -> JSONResponse:
    return _error(
        403,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established "
        "identity). Please use API Key or other form of API consumer identity to call "
        "this API.",
    )


def _wrong_key(_key: str) -> JSONResponse:
    return _error(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
            }
        ],
    )


def _retry_after() -> JSONResponse:
    response = _error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted.")
    response.headers["Retry-After"] = "11"
    return response


_REFUSALS: Mapping[Switch, Callable[[], JSONResponse]] = {
    Switch.RATE_LIMIT: lambda: _error(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
        details=[{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}],
    ),
    Switch.RETRY_AFTER: _retry_after,
    Switch.SERVER_ERROR: lambda: _error(500, "INTERNAL", "An internal error has occurred."),
    Switch.OVERLOADED: lambda: _error(
        503, "UNAVAILABLE", "The model is overloaded. Please try again later."
    ),
}
"""The switches Google answers with an HTTP error."""


def _validate(model: str, body: Any) -> JSONResponse | None:
    if not isinstance(body, dict) or not body.get("contents"):
        return _invalid("* GenerateContentRequest.contents: contents is not specified")
    for content in body["contents"]:
        for part in content.get("parts") or ():
            inline = part.get("inlineData")
            if inline is None:
                continue
            if not str(inline.get("mimeType", "")).startswith("image/"):
                return _invalid("Unsupported MIME type: " + str(inline.get("mimeType")))
            try:
                base64.b64decode(inline.get("data", ""), validate=True)
            except (binascii.Error, ValueError):
                return _invalid(
                    "Invalid value at 'contents[0].parts[1].inline_data.data' (TYPE_BYTES), "
                    "Base64 decoding failed"
                )
    config = body.get("generationConfig") or {}
    for modality in config.get("responseModalities") or ():
        if modality not in ("TEXT", "IMAGE"):
            return _invalid(
                f"Invalid value at 'generation_config.response_modalities[0]': {modality!r}"
            )
    image_config = config.get("imageConfig") or {}
    for key in image_config:
        if key not in ("aspectRatio", "imageSize"):
            return _invalid(
                f'Invalid JSON payload received. Unknown name "{key}" at '
                "'generation_config.image_config': Cannot find field."
            )
    ratio = image_config.get("aspectRatio")
    allowed = RATIOS | (EXTRA_RATIOS if "3.1-flash-image" in model or "2.1" in model else set())
    if ratio is not None and ratio not in allowed:
        return _invalid(f"Unsupported aspect ratio: {ratio}")
    size = image_config.get("imageSize")
    if size is not None:
        if model == "gemini-2.5-flash-image":
            return _invalid("Image size is not supported for this model.")
        if size not in _SIZES or (size == "512" and "3.1-flash-image" not in model):
            return _invalid(f"Unsupported image size: {size}")
    return None


def create_app(api_key: str = API_KEY, **_options: Any) -> FastAPI:
    """The fake Gemini API; ``api_key`` is the one key it accepts."""
    app = FastAPI(title="fake gemini")
    # Google answers a missing key 403 and a wrong one 400 API_KEY_INVALID, never 401.
    authenticate = kit.require_key(
        api_key, header="x-goog-api-key", query="key", missing=_missing_key, wrong=_wrong_key
    )
    kit.record_requests(app, authenticate=authenticate)

    @app.post("/v1beta/models/{model}:generateContent")
    async def generate_content(model: str, request: Request) -> JSONResponse:
        body = kit.recorded(request).json
        if model in RETIRED:
            return _error(404, "NOT_FOUND", f"models/{model} is no longer available.")
        if model not in MODELS:
            return _error(
                404,
                "NOT_FOUND",
                f"models/{model} is not found for API version v1beta, or is not supported "
                "for generateContent.",
            )
        if (invalid := _validate(model, body)) is not None:
            return invalid
        prompt = " ".join(
            str(part.get("text", "")) for part in body["contents"][0].get("parts") or ()
        )
        if (refused := kit.steer(prompt, _REFUSALS)) is not None:
            return refused
        answer: dict[str, Any] = {
            "responseId": uuid.uuid4().hex,
            "modelVersion": model,
            "usageMetadata": {"promptTokenCount": len(prompt.split()), "totalTokenCount": 1300},
        }
        if Switch.MODERATE in prompt:
            answer["promptFeedback"] = {"blockReason": "PROHIBITED_CONTENT"}
            return JSONResponse(answer)
        if Switch.UNSAFE_IMAGE in prompt:
            answer["candidates"] = [{"finishReason": "IMAGE_SAFETY", "index": 0}]
            return JSONResponse(answer)
        text = {"text": "Here is your image."}
        if Switch.NO_IMAGE in prompt:
            answer["candidates"] = [
                {
                    "content": {"role": "model", "parts": [{"text": "I can only describe it."}]},
                    "finishReason": "NO_IMAGE",
                    "index": 0,
                }
            ]
            return JSONResponse(answer)
        image_config = (body.get("generationConfig") or {}).get("imageConfig") or {}
        png = _png(
            image_config.get("aspectRatio", "1:1"),
            _SIZES[image_config.get("imageSize", "1K")],
            prompt,
        )
        parts: list[dict[str, Any]] = []
        if Switch.THINKING in prompt:
            thought = _png("1:1", 1, "draft")
            parts.append(
                {
                    "thought": True,
                    "inlineData": {
                        "mimeType": "image/png",
                        "data": base64.b64encode(thought).decode(),
                    },
                }
            )
        parts += [
            text,
            {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png).decode()}},
        ]
        answer["candidates"] = [
            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        ]
        return JSONResponse(answer)

    return app
