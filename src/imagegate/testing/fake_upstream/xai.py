"""A fake xAI Grok Imagine API: ``/v1/images/generations`` and JSON ``/v1/images/edits``.

Errors come as xAI sends them, ``{"code": <gRPC status text>, "error": <message>}``, and a wrong
key is a **400** ``Incorrect API key provided: xa***yz. …`` (a missing one a 401). Requests are
checked like xAI does: model, ``n`` 1–10, ``aspect_ratio``/``resolution``/``response_format``
enums, OpenAI's ``size``/``quality``/``style`` refused, edit ``image`` objects (up to 3, ``data:``
URIs must hold a real image). Images are JPEGs drawn by Pillow at 1/``scale`` of the size the ratio
and resolution give, returned as ``b64_json`` or as URLs this server serves.

Prompt switches (see ``kit``): ``rate-limit-me``, ``server-error``, ``moderate-me``,
``block-me``. Every API request is appended to ``app.state.requests`` as a ``RecordedRequest``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from PIL import Image

from imagegate.providers.sandbox import render
from imagegate.testing.fake_upstream import kit
from imagegate.testing.fake_upstream.kit import RecordedRequest, Switch

__all__ = ["RecordedRequest", "create_app"]

MODELS = frozenset(
    {
        "grok-imagine-image",
        "grok-imagine-image-2.0",
        "grok-imagine-image-quality",
        "grok-2-image",
        "grok-2-image-1212",
    }
)
ASPECT_RATIOS = kit.ratios(
    "1:1", "3:4", "4:3", "9:16", "16:9", "2:3", "3:2", "9:19.5", "19.5:9", "9:20", "20:9", "1:2",
    "2:1",
) | {"auto": (1.0, 1.0)}  # fmt: skip
RESOLUTIONS = {"1k": 1024, "2k": 2048}
_FIELDS = {"model", "prompt", "n", "response_format", "aspect_ratio", "resolution", "user"}
_UNSUPPORTED = {"size", "quality", "style"}
_FILES = "/v1/_files/"
"""Where ``response_format: url`` images are served, as ``<id>.jpeg``."""


class XaiError(kit.Refusal):
    """xAI's error body, ``{"code": <gRPC status text>, "error": <message>}``."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        body = {"code": code, "error": message}
        super().__init__(JSONResponse(body, status_code=status, headers=headers))


def _invalid(message: str) -> XaiError:
    return XaiError(400, "Client specified an invalid argument", message)


def _masked(key: str) -> str:
    return f"{key[:2]}***{key[-2:]}" if len(key) > 4 else "***"


def _check_image(value: Any) -> None:
    if not isinstance(value, dict) or value.get("type") != "image_url":
        raise _invalid('image must be an object {"type": "image_url", "url": ...}')
    url = value.get("url")
    if not isinstance(url, str) or not url.startswith(("https://", "data:")):
        raise _invalid("image.url must be an https URL or a data URI")
    if url.startswith("data:"):
        try:
            header, encoded = url.split(",", 1)
            if not header.endswith(";base64"):
                raise ValueError(header)
            with Image.open(io.BytesIO(base64.b64decode(encoded, validate=True))) as picture:
                picture.verify()
        except (ValueError, binascii.Error, OSError) as exc:
            raise _invalid("Unable to decode the input image from the data URI") from exc


def _wrong_key(key: str) -> Response:
    """xAI answers a wrong key with a 400, the key masked."""
    return _invalid(
        f"Incorrect API key provided: {_masked(key)}. You can obtain an API key from "
        "https://console.x.ai."
    ).response


@dataclass
class FakeXai:
    retry_after: int
    scale: int
    shelf: kit.ImageShelf = field(default_factory=kit.ImageShelf)

    def validate(self, body: Any, *, edit: bool) -> None:
        if not isinstance(body, dict):
            raise _invalid("Failed to deserialize the JSON body into the target type")
        for name in body:
            if name in _UNSUPPORTED:
                raise _invalid(f"Argument not supported: {name}")
            if name not in _FIELDS and not (edit and name == "image"):
                raise _invalid(f"Failed to deserialize the JSON body: unknown field `{name}`")
        model = body.get("model")
        if model not in MODELS:
            raise XaiError(
                404,
                "Some requested entity was not found",
                f"The model {model} does not exist or your team does not have access to it.",
            )
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise _invalid("Prompt must not be empty")
        if len(prompt) > 7500:
            raise _invalid(f"Prompt is too long: {len(prompt)} characters, maximum is 7500")
        n = body.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10:
            raise _invalid(f"n must be between 1 and 10, got {n}")
        for name, allowed in (
            ("aspect_ratio", ASPECT_RATIOS),
            ("resolution", RESOLUTIONS),
            ("response_format", {"url": 0, "b64_json": 0}),
        ):
            if name in body and body[name] not in allowed:
                raise _invalid(f"Invalid {name}: {body[name]!r}")
        if edit:
            images = body.get("image")
            images = images if isinstance(images, list) else [images]
            if images == [None]:
                raise _invalid("image is required for image edits")
            if len(images) > 3:
                raise _invalid("At most 3 input images are supported")
            for image in images:
                _check_image(image)

    def steer(self, prompt: str) -> None:
        kit.refuse(
            prompt,
            {
                Switch.RATE_LIMIT: lambda: XaiError(
                    429,
                    "Some resource has been exhausted",
                    "Your team has exceeded its rate limit for image generation requests.",
                    headers={"retry-after": str(self.retry_after)},
                ),
                Switch.SERVER_ERROR: lambda: XaiError(
                    500, "Internal error", "Internal server error"
                ),
            },
        )

    def answer(self, request: Request, body: dict[str, Any]) -> JSONResponse:
        prompt: str = body["prompt"]
        self.steer(prompt)
        if Switch.BLOCK in prompt:
            return JSONResponse({"data": []})
        ratio_w, ratio_h = ASPECT_RATIOS[body.get("aspect_ratio", "1:1")]
        longest = RESOLUTIONS[body.get("resolution", "1k")] / self.scale
        scale = longest / max(ratio_w, ratio_h)
        size = (round(ratio_w * scale), round(ratio_h * scale))
        seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big")
        data: list[dict[str, Any]] = []
        for index in range(int(body.get("n", 1))):
            if Switch.MODERATE in prompt:
                data.append({"url": "", "revised_prompt": "", "respect_moderation": False})
                continue
            picture = render(prompt, seed, index, size, "JPEG")
            item: dict[str, Any] = {"revised_prompt": prompt, "respect_moderation": True}
            if body.get("response_format", "url") == "b64_json":
                item["b64_json"] = base64.b64encode(picture).decode()
            else:
                path = f"{_FILES}{uuid.uuid4().hex}.jpeg"
                item["url"] = self.shelf.url(request, self.shelf.put(path, picture, "image/jpeg"))
            data.append(item)
        return JSONResponse({"data": data})


def create_app(*, api_key: str = "xai-fake-key", retry_after: int = 5, scale: int = 8) -> FastAPI:
    """The fake; ``scale`` shrinks rendered images so tests stay fast."""
    fake = FakeXai(retry_after, scale)
    app = FastAPI(title="fake xAI images API")
    app.state.fake = fake
    kit.record_requests(
        app,
        view=lambda record: record,
        recorded=lambda path: not path.startswith(_FILES),
        authenticate=kit.require_key(
            api_key,
            scheme="Bearer",
            missing=lambda: (
                XaiError(
                    401, "Unauthenticated", "Missing bearer or basic authentication in header"
                ).response
            ),
            wrong=_wrong_key,
        ),
    )

    async def handle(request: Request, *, edit: bool) -> Response:
        body = kit.recorded(request).json
        if body is None:
            raise _invalid("Failed to parse the request body as JSON")
        fake.validate(body, edit=edit)
        return fake.answer(request, body)

    @app.post("/v1/images/generations")
    async def generations(request: Request) -> Response:
        return await handle(request, edit=False)

    @app.post("/v1/images/edits")
    async def edits(request: Request) -> Response:
        return await handle(request, edit=True)

    fake.shelf.serve(app, _FILES)
    return app
