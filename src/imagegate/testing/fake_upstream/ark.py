"""A fake BytePlus ModelArk / Volcengine Ark: ``POST /api/v3/images/generations`` for Seedream.

Auth is ``Authorization: Bearer <key>``; a missing or wrong key gets Ark's 401
``AuthenticationError``. Errors use Ark's body ``{"error": {"code", "message", "param", "type"}}``
and every message ends with ``Request id: …`` like Ark's. Validation follows the documented rules:
known model ids (BytePlus and ``doubao-`` ids, ``ep-…`` endpoints) else 404
``InvalidEndpointOrModel.NotFound``; ``size`` a tier (1K/2K/4K, no 1K on 4.5/5.x) or ``WxH`` within
the pixel bounds (≥ 3,686,400 px on 4.5/5.x; 512–2048 per side on 3.0); no input images on the
text-to-image 3.0 model; ≤ 14 references (≤ 10 on 5.0 Pro); ``sequential_image_generation`` not on
3.0/5.0 Pro, ``max_images`` 1–15 with inputs + outputs ≤ 15; ``response_format`` ``url`` or
``b64_json``; ``seed`` −1…2147483647; ``guidance_scale`` 1–10. Image inputs may be http(s) URLs
(not fetched) or data URIs (decoded and checked).

Images are real JPEGs or PNGs (``output_format``) shaped like the requested size, longest side 128.
URLs point at the fake itself (``GET /fake-tos/<id>.<ext>``). Prompt switches (see ``kit``):
``moderate-me``, ``unsafe-output``, ``rate-limit-me``, ``server-error``, ``unsafe-second``,
``fewer-images``.

Every API request is recorded in ``app.state.requests`` (method, path, query, headers, JSON
body).
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image

from imagegate.testing.fake_upstream import kit
from imagegate.testing.fake_upstream.kit import Switch

__all__ = ["create_app"]

API_KEY = "test-ark-key"
MODELS = frozenset(
    {
        "seedream-3-0-t2i-250415",
        "seededit-3-0-i2i-250628",
        "seedream-4-0-250828",
        "seedream-4-5-251128",
        "seedream-5-0-lite-260128",
        "seedream-5-0-260128",
        "dola-seedream-5-0-pro-260628",
    }
)
_TIER_SIDE = {"1K": 1024, "2K": 2048, "4K": 4096}
_SIZE = re.compile(r"^(\d+)x(\d+)$")
_TOS = "/fake-tos/"
"""Where result images are served, as ``<id>.<ext>``: the fake's object storage."""
_DATA_URI = re.compile(r"^data:image/(png|jpeg|jpg|webp);base64,(.+)$", re.DOTALL)


def _known(model: str) -> bool:
    return model.startswith("ep-") or model.removeprefix("doubao-") in MODELS


def _error(status: int, code: str, message: str, kind: str, param: str = "") -> JSONResponse:
    text = f"{message} Request id: {uuid.uuid4().hex}"
    return JSONResponse(
        {"error": {"code": code, "message": text, "param": param, "type": kind}},
        status_code=status,
    )


def _invalid(param: str, message: str) -> JSONResponse:
    return _error(400, "InvalidParameter", message, "BadRequest", param)


def _image(width: int, height: int, fmt: str, label: str) -> bytes:
    size = kit.fit((width, height), 128, floor=8)
    return kit.picture(size, (90, 40, 200), label[:20], "PNG" if fmt == "png" else "JPEG")


def _rate_limited() -> JSONResponse:
    response = _error(
        429,
        "RateLimitExceeded.EndpointRPMExceeded",
        "The request has exceeded the RPM limit of the model.",
        "TooManyRequests",
    )
    response.headers["Retry-After"] = "3"
    return response


_REFUSALS: Mapping[Switch, Callable[[], JSONResponse]] = {
    Switch.MODERATE: lambda: _error(
        400,
        "InputTextSensitiveContentDetected",
        "The request failed because the input text may contain sensitive information.",
        "BadRequest",
    ),
    Switch.UNSAFE_OUTPUT: lambda: _error(
        400,
        "OutputImageSensitiveContentDetected",
        "The request failed because the output image may contain sensitive information.",
        "BadRequest",
    ),
    Switch.RATE_LIMIT: _rate_limited,
    Switch.SERVER_ERROR: lambda: _error(
        500,
        "InternalServiceError",
        "The service encountered an unexpected internal error.",
        "InternalServerError",
    ),
}
"""The switches Ark answers with an HTTP error, in the order it checks them."""


def _size(model: str, value: Any) -> tuple[int, int] | JSONResponse:
    """The output pixels for ``size``, or Ark's 400."""
    base = model.removeprefix("doubao-")
    large_only = base.startswith(("seedream-4-5", "seedream-5", "dola-seedream-5"))
    if value is None:
        return (2048, 2048) if not base.startswith("seedream-3") else (1024, 1024)
    if not isinstance(value, str):
        return _invalid("size", "The parameter `size` specified in the request is not valid.")
    if value in _TIER_SIDE:
        if base.startswith("seedream-3") or (large_only and value == "1K"):
            return _invalid("size", f"The size {value} is not supported by model {model}.")
        return _TIER_SIDE[value], _TIER_SIDE[value]
    match = _SIZE.match(value)
    if match is None:
        return _invalid("size", "The parameter `size` specified in the request is not valid.")
    width, height = int(match[1]), int(match[2])
    pixels = width * height
    if base.startswith("seedream-3"):
        ok = 512 <= width <= 2048 and 512 <= height <= 2048
    else:
        minimum = 3_686_400 if large_only else 1280 * 720
        ok = minimum <= pixels <= 4096 * 4096 and 1 / 16 <= width / height <= 16
    if not ok:
        return _invalid("size", f"The size {value} is out of the supported range for {model}.")
    return width, height


def _validate(model: str, body: dict[str, Any]) -> JSONResponse | None:
    base = model.removeprefix("doubao-")
    if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
        return _error(
            400,
            "MissingParameter",
            "The request failed because it is missing one or multiple required parameters: prompt.",
            "BadRequest",
            "prompt",
        )
    if body.get("response_format", "url") not in ("url", "b64_json"):
        return _invalid("response_format", "response_format must be url or b64_json.")
    seed = body.get("seed", -1)
    if not isinstance(seed, int) or not -1 <= seed <= 2147483647:
        return _invalid("seed", "seed must be an integer between -1 and 2147483647.")
    guidance = body.get("guidance_scale", 2.5)
    if not isinstance(guidance, int | float) or not 1 <= guidance <= 10:
        return _invalid("guidance_scale", "guidance_scale must be between 1 and 10.")
    if not isinstance(body.get("watermark", True), bool):
        return _invalid("watermark", "watermark must be a boolean.")
    if body.get("output_format", "jpeg") not in ("jpeg", "png"):
        return _invalid("output_format", "output_format must be jpeg or png.")
    images = body.get("image")
    refs = [images] if isinstance(images, str) else list(images or [])
    if refs and base.startswith("seedream-3"):
        return _invalid("image", f"The model {model} does not support image input.")
    limit = 10 if "pro" in base else 14
    if len(refs) > limit:
        return _invalid("image", f"At most {limit} reference images are supported.")
    for ref in refs:
        if not isinstance(ref, str):
            return _invalid("image", "image must be a URL or a base64 data URI.")
        if (match := _DATA_URI.match(ref)) is not None:
            try:
                Image.open(io.BytesIO(base64.b64decode(match[2], validate=True))).verify()
            except (binascii.Error, ValueError, OSError):
                return _invalid("image", "The image data could not be decoded.")
        elif not ref.startswith(("http://", "https://")):
            return _invalid("image", "image must be a URL or a base64 data URI.")
    mode = body.get("sequential_image_generation", "disabled")
    if mode not in ("auto", "disabled"):
        return _invalid("sequential_image_generation", "Must be auto or disabled.")
    if mode == "auto":
        if base.startswith(("seedream-3", "seededit")) or "pro" in base:
            return _invalid(
                "sequential_image_generation",
                f"The model {model} does not support sequential image generation.",
            )
        options = body.get("sequential_image_generation_options") or {}
        count = options.get("max_images", 15)
        if not isinstance(count, int) or not 1 <= count <= 15 or count + len(refs) > 15:
            return _invalid(
                "sequential_image_generation_options.max_images",
                "max_images must be 1-15 and input plus output images at most 15.",
            )
    return None


def create_app(api_key: str = API_KEY, **_options: Any) -> FastAPI:
    """The fake Ark API; ``api_key`` is the one key it accepts."""
    app = FastAPI(title="fake ark")
    shelf = kit.ImageShelf()
    kit.record_requests(
        app,
        recorded=lambda path: not path.startswith(_TOS),
        authenticate=kit.require_key(
            f"Bearer {api_key}",
            missing=lambda: _error(
                401,
                "AuthenticationError",
                "The API key or AK/SK in the request is missing or invalid.",
                "Unauthorized",
            ),
        ),
    )

    @app.post("/api/v3/images/generations")
    async def generations(request: Request) -> Response:
        body = kit.recorded(request).json
        if not isinstance(body, dict):
            return _invalid("", "The request body is not valid JSON.")
        model = str(body.get("model") or "")
        if not _known(model):
            return _error(
                404,
                "InvalidEndpointOrModel.NotFound",
                f"The model or endpoint {model} does not exist or you do not have access to it.",
                "NotFound",
            )
        if (invalid := _validate(model, body)) is not None:
            return invalid
        size = _size(model, body.get("size"))
        if isinstance(size, JSONResponse):
            return size
        prompt = body["prompt"]
        if (refused := kit.steer(prompt, _REFUSALS)) is not None:
            return refused
        count = 1
        if body.get("sequential_image_generation") == "auto":
            count = (body.get("sequential_image_generation_options") or {}).get("max_images", 15)
            if Switch.FEWER_IMAGES in prompt:
                count = 1
        fmt = body.get("output_format", "jpeg")
        width, height = size
        data: list[dict[str, Any]] = []
        for n in range(count):
            if n == 1 and Switch.UNSAFE_SECOND in prompt:
                data.append(
                    {
                        "error": {
                            "code": "OutputImageSensitiveContentDetected",
                            "message": "The output image may contain sensitive information.",
                        }
                    }
                )
                continue
            image = _image(width, height, fmt, f"{prompt} #{n + 1}")
            item: dict[str, Any] = {"size": f"{width}x{height}", "output_format": fmt}
            if body.get("response_format", "url") == "b64_json":
                item["b64_json"] = base64.b64encode(image).decode()
            else:
                path = f"{_TOS}{uuid.uuid4().hex}.{fmt}"
                media = "image/png" if fmt == "png" else "image/jpeg"
                item["url"] = shelf.url(request, shelf.put(path, image, media))
            data.append(item)
        made = sum(1 for item in data if "error" not in item)
        return JSONResponse(
            {
                "model": model,
                "created": int(time.time()),
                "data": data,
                "usage": {
                    "generated_images": made,
                    "output_tokens": made * 16384,
                    "total_tokens": made * 16384,
                },
            }
        )

    shelf.serve(app, _TOS, missing=lambda: JSONResponse({"error": "NoSuchKey"}, status_code=404))
    return app
