"""A fake OpenAI Images API: ``/v1/images/generations`` (JSON) and ``/v1/images/edits`` (multipart).

It checks what OpenAI checks — the Bearer key, the JSON body, unknown parameters, per-model
``size``/``quality``/``n``/``style`` rules, GPT-only and DALL·E-only fields, edit images — and
answers with OpenAI's ``ImagesResponse`` or ``{"error": {message, type, param, code}}``.
Images are real pictures drawn by Pillow at 1/``scale`` of the requested size, returned as
``b64_json`` (or, for DALL·E with ``response_format: url``, as URLs this server serves itself).

Prompt switches (see ``kit``): ``rate-limit-me``, ``quota-me``, ``server-error``,
``moderate-me``. Models in ``retired_models`` answer 404 ``model_not_found`` as OpenAI has since
2026-05-12. Every API request received is appended to ``app.state.requests`` as a
``RecordedRequest``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from PIL import Image

from imagegate.providers.sandbox import render
from imagegate.testing.fake_upstream import kit
from imagegate.testing.fake_upstream.kit import RecordedRequest, Switch

__all__ = ["RecordedRequest", "create_app"]

GPT_MODELS = frozenset(
    {"gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2", "chatgpt-image-latest"}
)
DALLE_MODELS = frozenset({"dall-e-2", "dall-e-3"})
_PROMPT_LIMITS = {"dall-e-2": 1000, "dall-e-3": 4000}
_SIZES = {
    "gpt": {"auto", "1024x1024", "1536x1024", "1024x1536"},
    "dall-e-2": {"256x256", "512x512", "1024x1024"},
    "dall-e-3": {"1024x1024", "1792x1024", "1024x1792"},
}
_EDIT_SIZES = {"gpt": _SIZES["gpt"] | {"256x256", "512x512"}, "dall-e-2": _SIZES["dall-e-2"]}
_QUALITIES = {
    "gpt": {"auto", "low", "medium", "high"},
    "dall-e-2": {"standard", "auto"},
    "dall-e-3": {"standard", "hd", "auto"},
}
_COMMON_FIELDS = {"prompt", "model", "n", "size", "quality", "user"}
_GPT_FIELDS = {
    "background",
    "output_format",
    "output_compression",
    "moderation",
    "partial_images",
    "stream",
}
_FORMATS = {
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
}
_FILES = "/v1/_files/"
"""Where DALL·E's ``response_format: url`` images are served."""


class OpenAIError(kit.Refusal):
    """OpenAI's error body, ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        super().__init__(JSONResponse(body, status_code=status, headers=headers))


def _family(model: str) -> str:
    return "gpt" if model in GPT_MODELS else model


def _unknown(name: str) -> OpenAIError:
    return OpenAIError(400, f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")


def _invalid(param: str, value: Any, allowed: Iterable[str]) -> OpenAIError:
    choices = ", ".join(f"'{item}'" for item in sorted(allowed))
    return OpenAIError(
        400,
        f"Invalid value: '{value}'. Supported values are: {choices}.",
        param=param,
        code="invalid_value",
    )


def _moderated(family: str) -> OpenAIError:
    if family == "gpt":
        return OpenAIError(
            400,
            "Your request was rejected by the safety system. If you believe this is an "
            "error, contact us at help.openai.com and include the request ID.",
            type_="image_generation_user_error",
            code="moderation_blocked",
        )
    return OpenAIError(
        400,
        "Your request was rejected as a result of our safety system. Your prompt may "
        "contain text that is not allowed by our safety system.",
        code="content_policy_violation",
    )


_MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)


def _wrong_key(key: str) -> Response:
    shown = key[:3] + "*" * max(0, len(key) - 7) + key[-4:]
    return OpenAIError(
        401,
        f"Incorrect API key provided: {shown}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    ).response


@dataclass
class FakeOpenAI:
    retired: frozenset[str]
    retry_after: int
    scale: int
    picture: bytes | None = None
    shelf: kit.ImageShelf = field(default_factory=kit.ImageShelf)
    picture_b64: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        # The one picture's base64, encoded once like the picture was drawn once.
        if self.picture is not None:
            self.picture_b64 = base64.b64encode(self.picture).decode()

    def steer(self, prompt: str, family: str) -> None:
        """Failures the prompt asks for, after the request itself was understood."""
        kit.refuse(
            prompt,
            {
                Switch.RATE_LIMIT: lambda: OpenAIError(
                    429,
                    "Rate limit reached for images per minute. Please try again in "
                    f"{self.retry_after}s.",
                    type_="requests",
                    code="rate_limit_exceeded",
                    headers={
                        "retry-after": str(self.retry_after),
                        "x-ratelimit-limit-requests": "5",
                        "x-ratelimit-remaining-requests": "0",
                        "x-ratelimit-reset-requests": f"{self.retry_after}s",
                    },
                ),
                Switch.QUOTA: lambda: OpenAIError(
                    429,
                    "You exceeded your current quota, please check your plan and billing details.",
                    type_="insufficient_quota",
                    code="insufficient_quota",
                ),
                Switch.SERVER_ERROR: lambda: OpenAIError(
                    500,
                    "The server had an error while processing your request. Sorry about that!",
                    type_="server_error",
                ),
                Switch.MODERATE: lambda: _moderated(family),
            },
        )

    def validate(self, body: dict[str, Any], *, edit: bool) -> str:
        """Check ``body`` as OpenAI would; returns the model."""
        model = body.get("model") or ("gpt-image-1.5" if edit else "dall-e-2")
        if (
            not isinstance(model, str)
            or model in self.retired
            or (model not in GPT_MODELS and model not in DALLE_MODELS)
        ):
            raise OpenAIError(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        family = _family(model)
        if edit and model == "dall-e-3":
            raise OpenAIError(400, "dall-e-3 does not support image edits.", param="model")
        allowed = set(_COMMON_FIELDS)
        if family == "gpt":
            # CreateImageEditRequest has input_fidelity and no moderation.
            allowed |= (_GPT_FIELDS - {"moderation"}) | {"input_fidelity"} if edit else _GPT_FIELDS
        else:
            allowed |= {"response_format"} | ({"style"} if model == "dall-e-3" else set())
        if edit:
            allowed |= {"image", "image[]", "mask"}
        for name in body:
            if name not in allowed:
                raise _unknown(name)
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise OpenAIError(
                400,
                "Missing required parameter: 'prompt'.",
                param="prompt",
                code="missing_required_parameter",
            )
        limit = _PROMPT_LIMITS.get(model, 32000)
        if len(prompt) > limit:
            raise OpenAIError(
                400,
                f"Invalid 'prompt': string too long. Expected a string with maximum length "
                f"{limit}, but got a string with length {len(prompt)} instead.",
                param="prompt",
                code="string_above_max_length",
            )
        n = body.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10:
            raise OpenAIError(
                400, f"Invalid 'n': {n}. Must be between 1 and 10.", param="n", code="invalid_value"
            )
        if model == "dall-e-3" and n != 1:
            raise OpenAIError(400, "You must provide n=1 for this model.", param="n")
        sizes = (_EDIT_SIZES if edit else _SIZES)[family]
        if "size" in body and body["size"] not in sizes:
            raise _invalid("size", body["size"], sizes)
        if "quality" in body and body["quality"] not in _QUALITIES[family]:
            raise _invalid("quality", body["quality"], _QUALITIES[family])
        choices: dict[str, set[str]] = {
            "response_format": {"url", "b64_json"},
            "style": {"vivid", "natural"},
            "output_format": set(_FORMATS),
            "background": {"transparent", "opaque", "auto"},
            "moderation": {"low", "auto"},
            "input_fidelity": {"high", "low"},
        }
        for name, values in choices.items():
            if name in body and body[name] not in values:
                raise _invalid(name, body[name], values)
        if body.get("background") == "transparent" and body.get("output_format", "png") == "jpeg":
            raise OpenAIError(
                400,
                "Transparent background is not supported for the jpeg output format.",
                param="background",
                code="invalid_value",
            )
        return model

    def answer(self, request: Request, body: dict[str, Any], model: str) -> JSONResponse:
        family = _family(model)
        self.steer(str(body["prompt"]), family)
        size = body.get("size", "1024x1024")
        size = "1024x1024" if size == "auto" else size
        width, height = (int(part) // self.scale for part in size.split("x"))
        fmt_name = body.get("output_format", "png") if family == "gpt" else "png"
        fmt, content_type = _FORMATS[fmt_name]
        seed = int.from_bytes(hashlib.sha256(body["prompt"].encode()).digest()[:4], "big")
        pictures = [
            self.picture or render(body["prompt"], seed, index, (width, height), fmt)
            for index in range(int(body.get("n", 1)))
        ]
        data: list[dict[str, Any]] = []
        for picture in pictures:
            if family != "gpt" and body.get("response_format", "url") == "url":
                path = self.shelf.put(f"{_FILES}{uuid.uuid4().hex}", picture, content_type)
                item: dict[str, Any] = {"url": self.shelf.url(request, path)}
            else:
                item = {"b64_json": self.picture_b64 or base64.b64encode(picture).decode()}
            if model == "dall-e-3":
                item["revised_prompt"] = f"A picture of {body['prompt']}"
            data.append(item)
        result: dict[str, Any] = {"created": int(time.time()), "data": data}
        if family == "gpt":
            quality = body.get("quality", "auto")
            result |= {
                "background": "transparent"
                if body.get("background") == "transparent"
                else "opaque",
                "output_format": fmt_name,
                "quality": "medium" if quality == "auto" else quality,
                "size": size,
                "usage": {
                    "input_tokens": 50,
                    "input_tokens_details": {"image_tokens": 0, "text_tokens": 50},
                    "output_tokens": 4160 * len(data),
                    "output_tokens_details": {"image_tokens": 4160 * len(data), "text_tokens": 0},
                    "total_tokens": 50 + 4160 * len(data),
                },
            }
        return _Answer(result, headers={"x-request-id": f"req_{uuid.uuid4().hex}"})


class _Answer(JSONResponse):
    """Starlette's JSON answer, the same bytes, rendered by orjson: the standard library's
    encoder spent a quarter of a benchmark upstream's CPU on the 87 KB base64 string."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _check_edit_images(files: list[kit.Upload], model: str) -> None:
    images = [item for item in files if item[0] in ("image", "image[]")]
    if not images:
        raise OpenAIError(
            400,
            "Missing required parameter: 'image'.",
            param="image",
            code="missing_required_parameter",
        )
    if len(images) > (1 if model == "dall-e-2" else 16):
        raise OpenAIError(400, "Too many images provided.", param="image", code="invalid_value")
    for index, (_, _, _, data) in enumerate(images, start=1):
        try:
            with Image.open(io.BytesIO(data)) as picture:
                picture.verify()
                square = picture.width == picture.height
        except Exception as exc:
            raise OpenAIError(
                400,
                f"Invalid image file or mode for image {index}, please check your image file.",
                param="image",
                code="invalid_image_file",
            ) from exc
        if model == "dall-e-2" and not square:
            raise OpenAIError(400, "Uploaded image must be square.", param="image")


def create_app(
    *,
    api_key: str = "sk-fake-openai",
    retired_models: Iterable[str] = (),
    retry_after: int = 7,
    scale: int = 8,
    picture: bytes | None = None,
    keep_requests: bool = True,
) -> FastAPI:
    """The fake; ``scale`` shrinks rendered images so tests stay fast. With ``picture``, every
    image answered is those bytes, drawn by no one: an upstream that costs (almost) nothing,
    for benchmarks, which also pass ``keep_requests=False`` (``app.state.requests`` stays
    empty rather than growing by a record a request)."""
    fake = FakeOpenAI(frozenset(retired_models), retry_after, scale, picture)
    app = FastAPI(title="fake OpenAI Images API")
    app.state.fake = fake
    kit.record_requests(
        app,
        view=lambda record: record,
        recorded=lambda path: not path.startswith(_FILES),
        authenticate=kit.require_key(
            api_key,
            scheme="Bearer",
            missing=lambda: OpenAIError(401, _MISSING_KEY).response,
            wrong=_wrong_key,
        ),
        keep=keep_requests,
    )

    @app.post("/v1/images/generations")
    async def generations(request: Request) -> Response:
        body = kit.recorded(request).json
        if body is None:
            raise OpenAIError(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly.)",
            )
        if not isinstance(body, dict):
            raise OpenAIError(400, "Invalid type for request body: expected an object.")
        return fake.answer(request, body, fake.validate(body, edit=False))

    @app.post("/v1/images/edits")
    async def edits(request: Request) -> Response:
        entry = kit.recorded(request)
        if not entry.multipart:
            raise OpenAIError(400, "Invalid content type: expected multipart/form-data.")
        body: dict[str, Any] = dict(entry.form)
        if "n" in body:
            try:
                body["n"] = int(body["n"])
            except ValueError as exc:
                raise _invalid("n", body["n"], ["1", "…", "10"]) from exc
        for upload in entry.files:
            body[upload.name] = "<file>"
        model = fake.validate(body, edit=True)
        _check_edit_images(entry.files, model)
        return fake.answer(request, body, model)

    fake.shelf.serve(app, _FILES)
    return app
