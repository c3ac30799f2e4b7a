"""OpenAI Images API: GPT Image models, and DALL·E for any host that still serves it.

OpenAI answers synchronously: ``submit`` posts once and returns ``Finished`` with the images the
vendor sent inline as base64 (GPT image models always do; DALL·E is asked for ``b64_json`` so no
60-minute URL has to be chased). With ``input_images`` a GPT image job goes to ``/images/edits`` as
multipart with one ``image[]`` part per input, downloaded through ``context.fetch_input``.

OpenAI shut DALL·E 2 and 3 down on 2026-05-12, so routes that still carry them point at a
compatible host through ``base_url``, or alias them to a GPT image model with the
``models`` option (``{"dall-e-3": "gpt-image-1.5"}``); an aliased job is built with the
mapping of the model actually sent, and that model is recorded as ``served_model``.

Options: ``organization`` and ``project`` (sent as ``OpenAI-Organization`` / ``OpenAI-Project``),
``models``, and ``dalle3_quality`` (``standard`` by default, ``hd`` costs twice as much).

Moderation arrives as HTTP 400 with ``code: moderation_blocked`` (GPT image) or
``content_policy_violation`` (DALL·E); a 429 with ``insufficient_quota`` is an empty account,
which no retry fixes. A 200 that is empty, not JSON, off the ``ImagesResponse`` schema or
without an image is ``UpstreamRejected``: the paid call was made, so it is never resent.
"""

from __future__ import annotations

import binascii
import functools
from collections.abc import Mapping
from typing import Any, Literal

import httpx2
from pydantic import Field

from imagegate.errors import (
    UpstreamMisconfigured,
    UpstreamModerated,
    UpstreamRejected,
)
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
    json_object,
    parse_off_loop,
    post_json,
    raise_for_upstream,
    transport_error,
)
from imagegate.providers.port import (
    Finished,
    GenerationRequest,
    OutputImage,
    ProviderContext,
)
from imagegate.settings import ProviderSettings

__all__ = ["OpenAIAdapter", "Options", "create_adapter"]

NAME = "openai"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
MODERATION_CODES = frozenset({"moderation_blocked", "content_policy_violation"})
_GPT_SIZES = {"1:1": "1024x1024", "3:2": "1536x1024", "2:3": "1024x1536"}
_DALLE3_SIZES = {"1:1": "1024x1024", "3:2": "1792x1024", "2:3": "1024x1792"}
_CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


class Options(ProviderOptions):
    organization: str | None = None
    """Sent as ``OpenAI-Organization``."""
    project: str | None = None
    """Sent as ``OpenAI-Project``."""
    models: dict[str, str] = Field(default_factory=dict)
    """Route model id → model actually sent (``{"dall-e-3": "gpt-image-1.5"}``)."""
    dalle3_quality: Literal["standard", "hd"] = "standard"
    """``hd`` doubles DALL·E 3's price upstream."""


EDIT_FIELDS = frozenset(
    {"model", "prompt", "n", "size", "quality", "output_format", "background", "input_fidelity"}
)
"""The payload fields ``CreateImageEditRequest`` has (it has no ``moderation``, which only
``CreateImageRequest`` takes); one payload builder serves both endpoints."""


def is_dalle(model: str) -> bool:
    return model.startswith("dall-e-")


def gpt_image_payload(model: str, request: GenerationRequest) -> dict[str, Any]:
    """The generations/edits fields for a GPT image model from ``gptImageParams``.

    ``dalleParams`` (an aliased DALL·E job) share ``aspect_ratio``; their ``style`` has no GPT
    counterpart and is dropped.
    """
    params = request.params
    payload: dict[str, Any] = {
        "model": model,
        "prompt": request.prompt,
        "n": request.outputs,
        "size": _GPT_SIZES.get(str(params.get("aspect_ratio", "1:1")), "1024x1024"),
        "quality": params.get("quality", "auto"),
        "output_format": params.get("output_format", "webp"),
        "background": params.get("background", "auto"),
    }
    if "moderation" in params:  # gptImage2Params only
        payload["moderation"] = params["moderation"]
    return payload


def dalle_payload(model: str, request: GenerationRequest, hd: bool) -> dict[str, Any]:
    """The generations fields for DALL·E from ``dalleParams``.

    DALL·E 2 draws squares only and has no style; DALL·E 3 draws one image per call.
    """
    params = request.params
    aspect = str(params.get("aspect_ratio", "1:1"))
    payload: dict[str, Any] = {
        "model": model,
        "prompt": request.prompt,
        "response_format": "b64_json",
    }
    if model == "dall-e-3":
        if request.outputs != 1:
            raise UpstreamRejected("dall-e-3 produces exactly one image per job", provider=NAME)
        payload |= {
            "n": 1,
            "size": _DALLE3_SIZES.get(aspect, "1024x1024"),
            "quality": "hd" if hd else "standard",
            "style": params.get("style", "vivid"),
        }
    else:
        payload |= {"n": request.outputs, "size": "1024x1024", "quality": "standard"}
    return payload


def _error_fields(response: httpx2.Response) -> tuple[str | None, str | None]:
    """The ``error.code`` and ``error.message`` of OpenAI's ``ErrorResponse``, when present."""
    try:
        body = response.json()
    except ValueError:
        return None, None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None
    code, message = error.get("code"), error.get("message")
    return (
        code if isinstance(code, str) else None,
        message if isinstance(message, str) else None,
    )


def check_response(response: httpx2.Response) -> None:
    """Raise the normalized error for an OpenAI failure; moderation and quota first."""
    if response.status_code < 300:
        return
    code, message = _error_fields(response)
    if code in MODERATION_CODES:
        raise UpstreamModerated(
            "Provider returned an error: content policy violation: "
            + clean_message(message or code),
            provider=NAME,
        )
    if code == "insufficient_quota":
        raise UpstreamMisconfigured(
            f"{NAME} account has no quota left: {clean_message(message or code)}", provider=NAME
        )
    raise_for_upstream(response, NAME, message)


def parse_images(response: httpx2.Response, content_type: str) -> list[OutputImage]:
    """The base64 images of an ``ImagesResponse`` (DALL·E is asked for ``b64_json`` too).

    A body that breaks the schema is ``UpstreamRejected`` (see ``providers.http.json_object``).
    """
    data = json_object(response, NAME).get("data")
    if not isinstance(data, list):
        raise UpstreamRejected(
            f"{NAME} answered with an unexpected body: no data list", provider=NAME
        )
    images: list[OutputImage] = []
    for item in data:
        encoded = item.get("b64_json") if isinstance(item, dict) else None
        if not isinstance(encoded, str) or not encoded:
            raise UpstreamRejected(
                f"{NAME} answered with an unexpected body: an item without b64_json",
                provider=NAME,
            )
        try:
            raw = decode_base64(encoded)
        except binascii.Error as exc:
            raise UpstreamRejected(
                f"{NAME} sent an image that is not base64", provider=NAME
            ) from exc
        images.append(OutputImage(data=raw, content_type=content_type))
    if not images:
        raise UpstreamRejected(f"{NAME} returned no image", provider=NAME)
    return images


class OpenAIAdapter(SyncAdapter):
    name = NAME

    def __init__(
        self,
        client: httpx2.AsyncClient,
        context: ProviderContext,
        *,
        models: Mapping[str, str],
        dalle3_hd: bool = False,
    ) -> None:
        super().__init__(client)
        self._context = context
        self._aliases = dict(models)
        self._dalle3_hd = dalle3_hd

    async def submit(self, request: GenerationRequest) -> Finished:
        model = self._aliases.get(request.route.upstream_model, request.route.upstream_model)
        if is_dalle(model):
            payload = dalle_payload(model, request, self._dalle3_hd)
            content_type = "image/png"
            response = await self._post_json("/images/generations", payload)
        else:
            payload = gpt_image_payload(model, request)
            content_type = _CONTENT_TYPES.get(str(payload["output_format"]), "image/png")
            inputs = request.params.get("input_images") or []
            if inputs:
                response = await self._edit(request, payload, list(inputs))
            else:
                response = await self._post_json("/images/generations", payload)
        check_response(response)
        # Megabytes of JSON and base64 are decoded in a worker thread, a small answer in place.
        images = await parse_off_loop(
            response, functools.partial(parse_images, content_type=content_type)
        )
        return Finished(images=images, served_model=model)

    async def _edit(
        self, request: GenerationRequest, payload: dict[str, Any], urls: list[str]
    ) -> httpx2.Response:
        fields = {key: str(value) for key, value in payload.items() if key in EDIT_FIELDS}
        if not payload["model"].endswith("-mini"):  # gpt-image-1-mini has no input_fidelity
            fields["input_fidelity"] = str(request.params.get("input_fidelity", "low"))
        files = []
        for index, url in enumerate(urls):
            fetched = await self._context.fetch_input(url)
            extension = fetched.content_type.removeprefix("image/").replace("jpeg", "jpg")
            files.append(
                ("image[]", (f"input-{index}.{extension}", fetched.data, fetched.content_type))
            )
        return await self._post("/images/edits", data=fields, files=files)

    async def _post(self, path: str, **kwargs: Any) -> httpx2.Response:
        try:
            return await self._client.post(path, **kwargs)
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=True) from exc

    async def _post_json(self, path: str, payload: dict[str, Any]) -> httpx2.Response:
        try:
            return await post_json(self._client, path, payload)
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=True) from exc


def create_adapter(config: ProviderSettings, context: ProviderContext) -> OpenAIAdapter:
    options = read_options(NAME, Options, config.options)
    headers = {}
    if key := api_key(config):
        headers["Authorization"] = f"Bearer {key}"
    if options.organization:
        headers["OpenAI-Organization"] = options.organization
    if options.project:
        headers["OpenAI-Project"] = options.project
    client = open_client(NAME, config, context, headers, default_base_url=DEFAULT_BASE_URL)
    return OpenAIAdapter(
        client, context, models=options.models, dalle3_hd=options.dalle3_quality == "hd"
    )
