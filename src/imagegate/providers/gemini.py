"""Google's Gemini API (the Nano Banana family) via ``POST /v1beta/models/{model}:generateContent``.

The call is synchronous and paid: one call returns (normally) one image as base64 ``inlineData``.
Gemini has no "number of images" knob, so a job asking for ``outputs`` images makes that many calls
one after another; a failure on any call fails the job (images already made are not billed to the
client, which is the gateway's refund rule, and re-running a paid call is never done here).

Params (``nanoBananaParams``) map as follows:

- ``aspect_ratio`` → ``generationConfig.imageConfig.aspectRatio``;
- ``resolution`` (``512px``/``1K``/``2K``/``4K``) → ``imageConfig.imageSize`` (``512``, ``1K`` …),
  except for ids listed in ``options["fixed_size_models"]`` (default: ``gemini-2.5-flash-image``)
  which are 1K-only and reject the field;
- ``image_input`` URLs → ``inlineData`` parts, fetched through ``context.fetch_input``;
- ``google_search`` / ``image_search`` → the ``googleSearch`` tool with web and/or image search;
- ``output_format`` is not sent: ``outputMimeType`` is Vertex-only and the Gemini API refuses it.
  The image's real type comes back in ``inlineData.mimeType`` and the gateway converts if needed.

Google retires model ids often, so ``options["models"]`` maps a route's ``upstream_model`` (or our
catalog model name) to the id to call today; a retired id answers 404 and is reported as a
misconfiguration, not as the client's fault.

Content policy arrives as HTTP 200: ``promptFeedback.blockReason`` or a candidate ``finishReason``
from ``MODERATION_REASONS`` → ``UpstreamModerated``. A 200 with no image and any other reason
(``NO_IMAGE``, ``IMAGE_OTHER``, ``OTHER``, ``MAX_TOKENS``, or ``STOP`` with only text) is
``UpstreamRejected`` with the model's own text: Google does not say it is a policy decision, the
same prompt usually fails the same way (so retrying would only burn quota), and a rejection is
refunded exactly like moderation. For the same reason a 200 that is empty, not JSON or off the
``GenerateContentResponse`` schema is ``UpstreamRejected``, never resent.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx2
from pydantic import Field

from imagegate.errors import (
    UpstreamMisconfigured,
    UpstreamModerated,
    UpstreamRateLimited,
    UpstreamRejected,
)
from imagegate.net.retry_after import MAX_RETRY_AFTER_SECONDS, retry_after_seconds
from imagegate.providers.base import (
    ProviderOptions,
    SyncAdapter,
    api_key,
    open_client,
    read_options,
)
from imagegate.providers.http import (
    clean_message,
    decode_base64,
    json_object_off_loop,
    post_json,
    raise_for_upstream,
    transport_error,
)
from imagegate.providers.port import (
    Finished,
    GenerationRequest,
    OutputImage,
    ProviderContext,
    Submitted,
)
from imagegate.settings import ProviderSettings

__all__ = ["DEFAULT_BASE_URL", "MODERATION_REASONS", "GeminiAdapter", "Options", "create_adapter"]

NAME = "gemini"
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
MODERATION_REASONS = frozenset(
    {
        "SAFETY",
        "PROHIBITED_CONTENT",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
        "JAILBREAK",
    }
)
"""Finish or block reasons that are Google's content policy (recitation = copyrighted output)."""

_DEFAULT_FIXED_SIZE_MODELS = ("gemini-2.5-flash-image",)
_RETRY_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def _image_size(resolution: Any) -> str | None:
    if not isinstance(resolution, str) or not resolution:
        return None
    value = resolution.strip().upper()
    return "512" if value in ("512PX", "512") else value


def _error_body(response: httpx2.Response) -> Mapping[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _error_reasons(error: Mapping[str, Any]) -> set[str]:
    details = error.get("details")
    if not isinstance(details, list):
        return set()
    return {str(d.get("reason")) for d in details if isinstance(d, dict) and d.get("reason")}


def _retry_delay(error: Mapping[str, Any]) -> float | None:
    """``google.rpc.RetryInfo.retryDelay`` ("23s") when Google put one in the error details."""
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and isinstance(detail.get("retryDelay"), str):
            match = _RETRY_DELAY.match(detail["retryDelay"])
            if match is not None:
                return min(float(match[1]), MAX_RETRY_AFTER_SECONDS)
    return None


def _object(value: Any, what: str) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, ``{}`` when absent; a wrong type breaks the schema."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UpstreamRejected(
            f"{NAME} answered with an unexpected body: {what} is not an object", provider=NAME
        )
    return value


def _list(value: Any, what: str) -> list[Any]:
    """``value`` when it is a JSON array, ``[]`` when absent; a wrong type breaks the schema."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise UpstreamRejected(
            f"{NAME} answered with an unexpected body: {what} is not a list", provider=NAME
        )
    return value


class Options(ProviderOptions):
    models: dict[str, str] = Field(default_factory=dict)
    """Route model id or catalog model id → the Gemini model id to call today."""
    fixed_size_models: list[str] = Field(default_factory=lambda: list(_DEFAULT_FIXED_SIZE_MODELS))
    """Model ids that only draw 1K images and refuse ``imageSize``."""


class GeminiAdapter(SyncAdapter):
    name = NAME

    def __init__(
        self,
        client: httpx2.AsyncClient,
        context: ProviderContext,
        *,
        models: Mapping[str, str],
        fixed_size_models: Sequence[str],
    ) -> None:
        super().__init__(client)
        self._context = context
        self._models = dict(models)
        self._fixed_size_models = frozenset(fixed_size_models)

    def model_id(self, request: GenerationRequest) -> str:
        """The id to call: an operator alias for the route's id or our model name, else the id."""
        upstream = request.route.upstream_model
        return self._models.get(upstream) or self._models.get(request.model) or upstream

    async def payload(self, request: GenerationRequest, model: str) -> dict[str, Any]:
        """The ``generateContent`` body for one image of this job."""
        params = request.params
        parts: list[dict[str, Any]] = [{"text": request.prompt}]
        for url in params.get("image_input") or ():
            fetched = await self._context.fetch_input(url)
            parts.append(
                {
                    "inlineData": {
                        "mimeType": fetched.content_type,
                        "data": base64.b64encode(fetched.data).decode("ascii"),
                    }
                }
            )
        image_config: dict[str, str] = {}
        aspect = params.get("aspect_ratio")
        if isinstance(aspect, str) and aspect:
            image_config["aspectRatio"] = aspect
        size = _image_size(params.get("resolution"))
        if size is not None and model not in self._fixed_size_models:
            image_config["imageSize"] = size
        generation_config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
        if image_config:
            generation_config["imageConfig"] = image_config
        body: dict[str, Any] = {
            "contents": [{"role": "user", "parts": parts}],
            "generationConfig": generation_config,
        }
        search_types: dict[str, Any] = {}
        if params.get("google_search"):
            search_types["webSearch"] = {}
        if params.get("image_search"):
            search_types["imageSearch"] = {}
        if search_types:
            body["tools"] = [{"googleSearch": {"searchTypes": search_types}}]
        return body

    async def submit(self, request: GenerationRequest) -> Submitted | Finished:
        model = self.model_id(request)
        body = await self.payload(request, model)
        images: list[OutputImage] = []
        served = model
        for _ in range(max(1, request.outputs)):
            answer = await self._generate(model, body)
            images.append(await asyncio.to_thread(self._image, answer))  # base64: off the loop
            served = str(answer.get("modelVersion") or model)
        return Finished(images=images, served_model=served)

    async def _generate(self, model: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        try:
            response = await post_json(
                self._client, f"/v1beta/models/{model}:generateContent", body
            )
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=True) from exc
        if response.status_code >= 300:
            self._raise_error(response, model)
        return await json_object_off_loop(response, NAME)

    def _raise_error(self, response: httpx2.Response, model: str) -> None:
        error = _error_body(response)
        message = clean_message(error.get("message") or response.reason_phrase)
        status = response.status_code
        if "API_KEY_INVALID" in _error_reasons(error):
            raise UpstreamMisconfigured(f"gemini refused our credentials: {message}", provider=NAME)
        if status == 404:
            raise UpstreamMisconfigured(
                f"gemini does not serve model {model!r} (map it in options.models): {message}",
                provider=NAME,
            )
        if status == 429 and retry_after_seconds(response.headers) is None:
            raise UpstreamRateLimited(
                f"gemini answered 429: {message}", provider=NAME, retry_after=_retry_delay(error)
            )
        raise_for_upstream(response, NAME, message)

    def _image(self, answer: Mapping[str, Any]) -> OutputImage:
        """The first non-thought image of the answer, or the policy/no-image failure."""
        feedback = _object(answer.get("promptFeedback"), "promptFeedback")
        block = feedback.get("blockReason")
        if block:
            raise UpstreamModerated(
                f"Provider returned an error: content policy violation ({block})", provider=NAME
            )
        candidates = _list(answer.get("candidates"), "candidates")
        candidate = _object(candidates[0] if candidates else None, "a candidate")
        content = _object(candidate.get("content"), "content")
        texts: list[str] = []
        for value in _list(content.get("parts"), "parts"):
            part = _object(value, "a part")
            if part.get("thought"):
                continue
            inline = _object(part.get("inlineData") or part.get("inline_data"), "inlineData")
            if inline.get("data"):
                try:
                    data = decode_base64(inline["data"])
                except (binascii.Error, ValueError, TypeError) as exc:
                    raise UpstreamRejected(
                        "gemini sent an image that is not valid base64", provider=NAME
                    ) from exc
                mime = inline.get("mimeType") or inline.get("mime_type") or "image/png"
                return OutputImage(data=data, content_type=str(mime))
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
        reason = str(candidate.get("finishReason") or "NO_IMAGE")
        said = clean_message(" ".join(texts)) if texts else ""
        detail = f" ({reason}{': ' + said if said else ''})"
        if reason in MODERATION_REASONS:
            raise UpstreamModerated(
                f"Provider returned an error: content policy violation{detail}", provider=NAME
            )
        raise UpstreamRejected(f"Provider returned no image{detail}", provider=NAME)


def create_adapter(config: ProviderSettings, context: ProviderContext) -> GeminiAdapter:
    options = read_options(NAME, Options, config.options)
    headers = {"x-goog-api-key": api_key(config)}
    return GeminiAdapter(
        open_client(NAME, config, context, headers, default_base_url=DEFAULT_BASE_URL),
        context,
        models=options.models,
        fixed_size_models=options.fixed_size_models,
    )
