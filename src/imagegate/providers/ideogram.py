"""Ideogram's synchronous image API: the legacy ``/generate`` family and Ideogram 3.0.

Which endpoint a job uses follows the route's ``upstream_model`` (after ``options["models"]``
aliases) and the inputs:

- legacy ids ``V_1`` … ``V_2A_TURBO``: ``POST /generate`` (JSON ``image_request``); with
  ``image`` + ``mask`` ``POST /edit`` (Ideogram allows it on ``V_2``/``V_2_TURBO`` only); with
  ``image`` alone ``POST /remix``; the last two are multipart;
- ``V_3`` and ``V_3_TURBO``/``_BALANCED``/``_DEFAULT``/``_QUALITY``/``_FLASH``:
  ``POST /v1/ideogram-v3/generate``, ``…/edit`` (``image`` + ``mask``) or ``…/remix`` (``image``);
- ``V_4``: ``POST /v1/ideogram-v4/generate`` (JSON), which documents only ``prompt``, ``seed``,
  ``magic_prompt_option`` and ``custom_model_uri``: no speed, shape, style or input images. The
  catalog's 4.0 route refuses every other param (the job goes to Replicate or is a 400), so this
  builder sends all a job routed here can carry.

The suffix of a ``V_3_*`` id fixes ``rendering_speed``; a bare ``V_3`` (what ``ideogram-character``
routes to) takes ``params.rendering_speed`` (``turbo``/``default``/``quality``). Ideogram 3.0 calls
are ``multipart/form-data`` because reference images travel as files: ``style_reference_images``
(≤ 3) and ``character_reference_image`` (sent as ``character_reference_images``, billed at the
character price) are fetched through ``context.fetch_input``, as are ``image`` and ``mask``.

Params (``ideogramParams``) are Apiframe's spelling and are translated: ``16:9`` becomes
``ASPECT_16_9`` (legacy) or ``16x9`` (v3); ``1024x1024`` becomes ``RESOLUTION_1024_1024`` (legacy);
``Auto``/``Render_3d`` become ``AUTO``/``RENDER_3D``; ``"Pop Art"`` becomes ``POP_ART``; ``"None"``
means "not set". Ideogram refuses ``resolution`` together with ``aspect_ratio``, so an explicit
resolution wins. ``negative_prompt`` is only sent to the legacy models Ideogram documents it for.

Answers carry URLs to download (ephemeral, so the worker fetches them at once). Moderation is a 422
``{"error": …}`` or a 200 item with ``is_image_safe: false`` and no URL; either is
``UpstreamModerated``. A 402 (``insufficient_funds``/``daily_limit``) is our account's problem, so
it is ``UpstreamMisconfigured`` rather than the client's fault. A 200 that is empty, not JSON,
off the schema or with no image is ``UpstreamRejected``: the paid call was made, so it is never
resent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2
from pydantic import Field

from imagegate.errors import UpstreamMisconfigured, UpstreamModerated, UpstreamRejected
from imagegate.providers.base import (
    ProviderOptions,
    SyncAdapter,
    api_key,
    open_client,
    read_options,
)
from imagegate.providers.http import (
    clean_message,
    json_object,
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
from imagegate.types import FetchedInput

__all__ = ["DEFAULT_BASE_URL", "IdeogramAdapter", "Options", "create_adapter"]

NAME = "ideogram"
DEFAULT_BASE_URL = "https://api.ideogram.ai"
LEGACY_MODELS = frozenset({"V_1", "V_1_TURBO", "V_2", "V_2_TURBO", "V_2A", "V_2A_TURBO"})
_NEGATIVE_PROMPT_MODELS = frozenset({"V_1", "V_1_TURBO", "V_2", "V_2_TURBO"})
_V3_SPEEDS = {
    "V_3": None,
    "V_3_FLASH": "FLASH",
    "V_3_TURBO": "TURBO",
    "V_3_BALANCED": "BALANCED",
    "V_3_DEFAULT": "DEFAULT",
    "V_3_QUALITY": "QUALITY",
}
V4_MODEL = "V_4"
_RATIO = re.compile(r"^\s*(\d+)\s*[:x]\s*(\d+)\s*$")
_NON_WORD = re.compile(r"[^0-9A-Za-z]+")

Files = list[tuple[str, tuple[str | None, bytes | str, str | None]]]


def _enum(value: Any) -> str | None:
    """Apiframe's friendly spelling as Ideogram's enum: ``"Pop Art"`` → ``POP_ART``."""
    if not isinstance(value, str) or not value.strip() or value.strip().lower() == "none":
        return None
    return _NON_WORD.sub("_", value.strip()).strip("_").upper()


def _ratio(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, str) or (match := _RATIO.match(value)) is None:
        return None
    return match[1], match[2]


def _resolution(value: Any) -> tuple[str, str] | None:
    if (
        not isinstance(value, str)
        or (match := re.match(r"^\s*(\d+)\s*x\s*(\d+)\s*$", value)) is None
    ):
        return None
    return match[1], match[2]


def _error_message(response: httpx2.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return response.text or None
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return None


def _reject_reason(response: httpx2.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return (
        str(body["reject_reason"]) if isinstance(body, dict) and "reject_reason" in body else None
    )


@dataclass(frozen=True)
class _Call:
    """One HTTP call to make: a JSON body or multipart files (form fields use a ``None`` name)."""

    path: str
    json: Mapping[str, Any] | None = None
    files: Files | None = None


class Options(ProviderOptions):
    models: dict[str, str] = Field(default_factory=dict)
    """Route model id or catalog model id → the Ideogram model id to use."""


class IdeogramAdapter(SyncAdapter):
    name = NAME

    def __init__(
        self, client: httpx2.AsyncClient, context: ProviderContext, *, models: Mapping[str, str]
    ) -> None:
        super().__init__(client)
        self._context = context
        self._models = dict(models)

    def model_id(self, request: GenerationRequest) -> str:
        upstream = request.route.upstream_model
        return self._models.get(upstream) or self._models.get(request.model) or upstream

    async def call_for(self, request: GenerationRequest) -> _Call:
        """The endpoint and body this job needs (see the table in the module docstring)."""
        model = self.model_id(request)
        if model in LEGACY_MODELS:
            return await self._legacy(request, model)
        if model in _V3_SPEEDS:
            return await self._v3(request, model)
        if model == V4_MODEL:
            return self._v4(request)
        raise UpstreamMisconfigured(
            f"ideogram: unknown upstream model {model!r} (expected one of "
            f"{', '.join(sorted(LEGACY_MODELS | _V3_SPEEDS.keys() | {V4_MODEL}))})",
            provider=NAME,
        )

    async def _legacy(self, request: GenerationRequest, model: str) -> _Call:
        params = request.params
        body: dict[str, Any] = {"prompt": request.prompt, "model": model}
        if request.outputs != 1:
            body["num_images"] = request.outputs
        if (magic := _enum(params.get("magic_prompt_option"))) is not None:
            body["magic_prompt_option"] = magic
        if isinstance(params.get("seed"), int):
            body["seed"] = params["seed"]
        if (style := _enum(params.get("style_type"))) is not None:
            body["style_type"] = style
        image, mask = params.get("image"), params.get("mask")
        if image and mask:
            files: Files = [(key, (None, str(value), None)) for key, value in body.items()]
            files.append(await self._file("image_file", image))
            files.append(await self._file("mask", mask))
            return _Call("/edit", files=files)
        negative = params.get("negative_prompt")
        if negative and model in _NEGATIVE_PROMPT_MODELS:
            body["negative_prompt"] = negative
        if (resolution := _resolution(params.get("resolution"))) is not None:
            body["resolution"] = f"RESOLUTION_{resolution[0]}_{resolution[1]}"
        elif (ratio := _ratio(params.get("aspect_ratio"))) is not None:
            body["aspect_ratio"] = f"ASPECT_{ratio[0]}_{ratio[1]}"
        if image:
            return _Call(
                "/remix",
                files=[
                    ("image_request", (None, json.dumps(body), "application/json")),
                    await self._file("image_file", image),
                ],
            )
        return _Call("/generate", json={"image_request": body})

    async def _v3(self, request: GenerationRequest, model: str) -> _Call:
        params = request.params
        fields: dict[str, Any] = {"prompt": request.prompt}
        if request.outputs != 1:
            fields["num_images"] = request.outputs
        speed = _V3_SPEEDS[model] or _enum(params.get("rendering_speed"))
        if speed is not None:
            fields["rendering_speed"] = speed
        if (magic := _enum(params.get("magic_prompt_option"))) is not None:
            fields["magic_prompt"] = magic
        if isinstance(params.get("seed"), int):
            fields["seed"] = params["seed"]
        if (style := _enum(params.get("style_type"))) is not None:
            fields["style_type"] = style
        if (preset := _enum(params.get("style_preset"))) is not None:
            fields["style_preset"] = preset
        image, mask = params.get("image"), params.get("mask")
        if not (image and mask):  # /edit keeps the source image's shape and has no negatives
            if (resolution := _resolution(params.get("resolution"))) is not None:
                fields["resolution"] = f"{resolution[0]}x{resolution[1]}"
            elif (ratio := _ratio(params.get("aspect_ratio"))) is not None:
                fields["aspect_ratio"] = f"{ratio[0]}x{ratio[1]}"
            if params.get("negative_prompt"):
                fields["negative_prompt"] = params["negative_prompt"]
        files: Files = [(key, (None, str(value), None)) for key, value in fields.items()]
        for url in params.get("style_reference_images") or ():
            files.append(await self._file("style_reference_images", url))
        if params.get("character_reference_image"):
            files.append(
                await self._file("character_reference_images", params["character_reference_image"])
            )
        path = "/v1/ideogram-v3/generate"
        if image:
            files.append(await self._file("image", image))
            path = "/v1/ideogram-v3/remix"
            if mask:
                files.append(await self._file("mask", mask))
                path = "/v1/ideogram-v3/edit"
        return _Call(path, files=files)

    def _v4(self, request: GenerationRequest) -> _Call:
        params = request.params
        body: dict[str, Any] = {"prompt": request.prompt}
        if isinstance(params.get("seed"), int):
            body["seed"] = params["seed"]
        if (magic := _enum(params.get("magic_prompt_option"))) is not None:
            body["magic_prompt_option"] = magic
        return _Call("/v1/ideogram-v4/generate", json=body)

    async def _file(
        self, field: str, url: Any
    ) -> tuple[str, tuple[str | None, bytes | str, str | None]]:
        fetched: FetchedInput = await self._context.fetch_input(str(url))
        extension = fetched.content_type.removeprefix("image/").replace("jpeg", "jpg")
        return field, (f"{field}.{extension}", fetched.data, fetched.content_type)

    async def submit(self, request: GenerationRequest) -> Submitted | Finished:
        call = await self.call_for(request)
        try:
            if call.json is not None:
                response = await post_json(self._client, call.path, dict(call.json))
            else:
                response = await self._client.post(call.path, files=call.files)
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=True) from exc
        self._raise_error(response)
        return Finished(images=self._images(response), served_model=self.model_id(request))

    def _raise_error(self, response: httpx2.Response) -> None:
        if response.status_code < 300:
            return
        message = clean_message(_error_message(response) or response.reason_phrase)
        if response.status_code == 422:
            raise UpstreamModerated(
                f"Provider returned an error: content policy violation ({message})",
                provider=NAME,
            )
        if response.status_code == 402:
            reason = _reject_reason(response) or "payment required"
            raise UpstreamMisconfigured(
                f"ideogram refused to bill our account ({reason}): {message}", provider=NAME
            )
        raise_for_upstream(response, NAME, message)

    def _images(self, response: httpx2.Response) -> Sequence[OutputImage]:
        """The image URLs of a 2xx answer; an unsafe slot (no URL) is moderation.

        A body that is empty, not JSON or off the schema is ``UpstreamRejected``, not retryable:
        the paid call was made and may have been billed, so the job fails (refunded).
        """
        data = json_object(response, NAME).get("data")
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise UpstreamRejected(
                f"{NAME} answered with an unexpected body: no list of image objects",
                provider=NAME,
            )
        if not data:
            raise UpstreamRejected(f"{NAME} returned no image", provider=NAME)
        if any(not item.get("is_image_safe", True) or not item.get("url") for item in data):
            raise UpstreamModerated(
                "Provider returned an error: content policy violation (is_image_safe: false)",
                provider=NAME,
            )
        if not all(isinstance(item["url"], str) for item in data):
            raise UpstreamRejected(
                f"{NAME} answered with an unexpected body: an image url is not a string",
                provider=NAME,
            )
        return [OutputImage(url=item["url"]) for item in data]


def create_adapter(config: ProviderSettings, context: ProviderContext) -> IdeogramAdapter:
    options = read_options(NAME, Options, config.options)
    headers = {"Api-Key": api_key(config)}
    return IdeogramAdapter(
        open_client(NAME, config, context, headers, default_base_url=DEFAULT_BASE_URL),
        context,
        models=options.models,
    )
