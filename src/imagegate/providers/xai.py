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

Options: ``resolution`` (``1k`` | ``2k``, sent when set), ``send_input_urls``, ``model_aliases``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import httpx2

from imagegate.errors import (
    UpstreamMisconfigured,
    UpstreamModerated,
    UpstreamRejected,
)
from imagegate.net.images import sniff_image_type
from imagegate.providers.http import (
    clean_message,
    create_client,
    json_object,
    raise_for_upstream,
    transport_error,
)
from imagegate.providers.port import (
    Finished,
    GenerationRequest,
    OutputImage,
    Pending,
    ProviderContext,
    TaskHandle,
)
from imagegate.settings import ProviderSettings

__all__ = ["XaiAdapter", "create_adapter"]

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
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise UpstreamRejected(
                f"{NAME} sent an image that is not base64", provider=NAME
            ) from exc
        images.append(OutputImage(data=raw, content_type=sniff_image_type(raw)))
    return images


class XaiAdapter:
    name = NAME
    supports_cancel = False

    def __init__(
        self,
        client: httpx2.AsyncClient,
        context: ProviderContext,
        *,
        resolution: str | None = None,
        send_input_urls: bool = False,
        model_aliases: Mapping[str, str] | None = None,
    ) -> None:
        self._client = client
        self._context = context
        self._resolution = resolution
        self._send_input_urls = send_input_urls
        self._aliases = dict(model_aliases or {})

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
            response = await self._client.post(path, json=payload)
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=True) from exc
        check_response(response)
        return Finished(images=parse_images(response), served_model=model)

    async def poll(self, request: GenerationRequest, task: TaskHandle) -> Pending | Finished:
        """Never called: ``submit`` always finishes. Resubmitting could bill twice, so refuse."""
        raise UpstreamRejected(f"{NAME} has no tasks to poll", provider=NAME)

    async def cancel(self, request: GenerationRequest, task: TaskHandle) -> None:
        return None

    async def aclose(self) -> None:
        await self._client.aclose()


def create_adapter(config: ProviderSettings, context: ProviderContext) -> XaiAdapter:
    options = config.options
    headers = {}
    if config.api_key is not None:
        headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
    client = create_client(
        config.base_url or DEFAULT_BASE_URL,
        headers,
        timeout=config.timeout,
        transport=context.transport,
    )
    resolution = options.get("resolution")
    aliases = options.get("model_aliases") or {}
    return XaiAdapter(
        client,
        context,
        resolution=str(resolution) if resolution else None,
        send_input_urls=bool(options.get("send_input_urls", False)),
        model_aliases={str(k): str(v) for k, v in dict(aliases).items()},
    )
