"""xAI Grok Imagine: OpenAI-style JSON generations, and edits that are JSON too (not multipart).

xAI answers synchronously, so ``submit`` returns ``Finished``. Images are asked for as
``b64_json``; their type is read from the bytes (xAI sends JPEG today and documents no format
field). An ``image`` param turns the job into ``POST /images/edits`` with
``{"type": "image_url", "url": …}``; by default the input is downloaded through
``context.fetch_input`` and sent as a ``data:`` URI, because our own upload URLs may not be
reachable from xAI. Set the option ``send_input_urls`` to pass public URLs through instead.

Moderation is silent: a flagged image comes back with ``respect_moderation: false`` and no
payload, and a fully blocked request with ``data: []`` — both are ``UpstreamModerated``. A wrong
key is HTTP **400** ``Incorrect API key provided``, not 401, so it is recognised by its text.
A 200 that is empty, not JSON or off the schema is ``UpstreamRejected``: the paid call was made,
so it is never resent.

Options: ``resolution`` (``1k`` | ``2k``, sent when set), ``send_input_urls``, ``models`` (route
model id → model id sent).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Literal

import httpx2
from pydantic import Field

from imagegate.errors import (
    UpstreamMisconfigured,
    UpstreamModerated,
    UpstreamRejected,
)
from imagegate.net.images import sniff_image_type
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

__all__ = ["Options", "XaiAdapter", "create_adapter"]

NAME = "xai"
DEFAULT_BASE_URL = "https://api.x.ai/v1"
_MODERATED = "Provider returned an error: content policy violation"


def _error_message(response: httpx2.Response) -> str | None:
    """xAI's error body is ``{"code": <gRPC status text>, "error": <message>}``."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict):
        for key in ("error", "message"):
            if isinstance(body.get(key), str):
                return str(body[key])
        if isinstance(body.get("error"), dict) and isinstance(body["error"].get("message"), str):
            return str(body["error"]["message"])
    return None


def check_response(response: httpx2.Response) -> None:
    if response.status_code < 300:
        return
    message = _error_message(response)
    if response.status_code == 400 and message and "api key" in message.lower():
        raise UpstreamMisconfigured(
            f"{NAME} refused our credentials: {clean_message(message)}", provider=NAME
        )
    raise_for_upstream(response, NAME, message)


def parse_images(response: httpx2.Response) -> list[OutputImage]:
    """The images of the answer; a flagged, empty or missing payload is moderation."""
    data = json_object(response, NAME).get("data")
    if data is not None and not isinstance(data, list):
        raise UpstreamRejected(
            f"{NAME} answered with an unexpected body: data is not a list", provider=NAME
        )
    if not data:
        raise UpstreamModerated(f"{_MODERATED}: {NAME} returned no image", provider=NAME)
    images: list[OutputImage] = []
    for item in data:
        if not isinstance(item, dict):
            raise UpstreamRejected(
                f"{NAME} answered with an unexpected body: an item is not an object",
                provider=NAME,
            )
        if item.get("respect_moderation") is False:
            raise UpstreamModerated(f"{_MODERATED}: {NAME} withheld the image", provider=NAME)
        encoded = item.get("b64_json")
        if not encoded:
            raise UpstreamModerated(f"{_MODERATED}: {NAME} returned an empty image", provider=NAME)
        if not isinstance(encoded, str):
            raise UpstreamRejected(
                f"{NAME} answered with an unexpected body: b64_json is not a string",
                provider=NAME,
            )
        try:
            raw = decode_base64(encoded)
        except binascii.Error as exc:
            raise UpstreamRejected(
                f"{NAME} sent an image that is not base64", provider=NAME
            ) from exc
        images.append(OutputImage(data=raw, content_type=sniff_image_type(raw)))
    return images


class Options(ProviderOptions):
    resolution: Literal["1k", "2k"] | None = None
    """Sent as ``resolution`` on every call when set."""
    send_input_urls: bool = False
    """Send input image URLs as they are instead of downloading them into ``data:`` URIs."""
    models: dict[str, str] = Field(default_factory=dict)
    """Route model id → model id actually sent."""


class XaiAdapter(SyncAdapter):
    name = NAME

    def __init__(
        self,
        client: httpx2.AsyncClient,
        context: ProviderContext,
        *,
        resolution: str | None = None,
        send_input_urls: bool = False,
        models: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(client)
        self._context = context
        self._resolution = resolution
        self._send_input_urls = send_input_urls
        self._aliases = dict(models or {})

    def payload(self, model: str, request: GenerationRequest) -> dict[str, Any]:
        """The generation fields from ``grokImagineParams`` (OpenAI's size/quality/style are
        not supported by xAI and never sent)."""
        payload: dict[str, Any] = {
            "model": model,
            "prompt": request.prompt,
            "n": request.outputs,
            "response_format": "b64_json",
        }
        if request.params.get("aspect_ratio"):
            payload["aspect_ratio"] = request.params["aspect_ratio"]
        if self._resolution:
            payload["resolution"] = self._resolution
        return payload

    async def _image_url(self, url: str) -> str:
        if self._send_input_urls:
            return url
        fetched = await self._context.fetch_input(url)
        encoded = base64.b64encode(fetched.data).decode()
        return f"data:{fetched.content_type};base64,{encoded}"

    async def submit(self, request: GenerationRequest) -> Finished:
        model = self._aliases.get(request.route.upstream_model, request.route.upstream_model)
        payload = self.payload(model, request)
        path = "/images/generations"
        if request.params.get("image"):
            url = await self._image_url(str(request.params["image"]))
            payload["image"] = {"type": "image_url", "url": url}
            path = "/images/edits"
        try:
            response = await post_json(self._client, path, payload)
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=True) from exc
        check_response(response)
        # Megabytes of JSON and base64 are decoded in a worker thread, a small answer in place.
        return Finished(images=await parse_off_loop(response, parse_images), served_model=model)


def create_adapter(config: ProviderSettings, context: ProviderContext) -> XaiAdapter:
    options = read_options(NAME, Options, config.options)
    headers = {}
    if key := api_key(config):
        headers["Authorization"] = f"Bearer {key}"
    return XaiAdapter(
        open_client(NAME, config, context, headers, default_base_url=DEFAULT_BASE_URL),
        context,
        resolution=options.resolution,
        send_input_urls=options.send_input_urls,
        models=options.models,
    )
