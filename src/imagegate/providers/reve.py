"""Reve: ``POST /v1/image/create``, synchronous, one base64 image per call.

``submit`` returns ``Finished`` with the decoded image; ``served_model`` is the pinned version Reve
reports (``reve-create@20250915``), so a job records exactly what drew it. ``reveParams`` map to
``aspect_ratio`` and ``version``; Reve documents no seed, so ``seed`` is not sent (the image is not
reproducible upstream). Reve draws one image per call, so a job asking for more is refused.

Moderation is a 200 with ``content_violation: true`` (also sent as the
``X-Reve-Content-Violation`` header) → ``UpstreamModerated``. Errors are
``{"error_code", "message"}``; ``402 INSUFFICIENT_CREDITS`` is an empty account, which no retry
fixes. A 200 that is empty, not JSON, without an image or with one that is not base64 is
``UpstreamRejected``: the paid call was made, so it is never resent.

Options: ``version`` (used when the params name none), ``test_time_scaling`` (1–5, the SDK
README's range; more detail for more credits) and ``postprocessing`` (Reve's list of steps, e.g.
``[{"process": "upscale", "upscale_factor": 2}]``).
"""

from __future__ import annotations

import asyncio
import binascii
from collections.abc import Sequence
from typing import Any

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
)
from imagegate.settings import ProviderSettings

__all__ = ["Options", "ReveAdapter", "create_adapter"]

NAME = "reve"
DEFAULT_BASE_URL = "https://api.reve.com"
_MODERATED = "Provider returned an error: content policy violation"


def _json(response: httpx2.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _decode(encoded: str) -> bytes:
    try:
        return decode_base64(encoded)
    except binascii.Error as exc:
        raise UpstreamRejected(f"{NAME} sent an image that is not base64", provider=NAME) from exc


def check_response(response: httpx2.Response) -> None:
    if response.status_code < 300:
        return
    body = _json(response)
    code = str(body.get("error_code") or response.headers.get("x-reve-error-code") or "")
    message = body.get("message") if isinstance(body.get("message"), str) else None
    text = clean_message(message or code or response.reason_phrase or response.status_code)
    if "VIOLATION" in code.upper():
        raise UpstreamModerated(f"{_MODERATED}: {text}", provider=NAME)
    if response.status_code == 402:
        raise UpstreamMisconfigured(f"{NAME} account has no credits left: {text}", provider=NAME)
    raise_for_upstream(response, NAME, text)


class Options(ProviderOptions):
    version: str | None = None
    """Reve model version, used when the request's params name none."""
    test_time_scaling: int | None = Field(default=None, ge=1, le=5)
    """More detail for more Reve credits; sent on every call when set."""
    postprocessing: list[Any] | None = None
    """Reve's post-processing steps, sent on every call when set."""


class ReveAdapter(SyncAdapter):
    name = NAME

    def __init__(
        self,
        client: httpx2.AsyncClient,
        *,
        version: str | None = None,
        test_time_scaling: int | None = None,
        postprocessing: Sequence[Any] | None = None,
    ) -> None:
        super().__init__(client)
        self._version = version
        self._test_time_scaling = test_time_scaling
        self._postprocessing = list(postprocessing or [])

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        params = request.params
        payload: dict[str, Any] = {"prompt": request.prompt}
        if params.get("aspect_ratio"):
            payload["aspect_ratio"] = params["aspect_ratio"]
        version = params.get("version") or self._version
        if version:
            payload["version"] = version
        if self._test_time_scaling is not None:
            payload["test_time_scaling"] = self._test_time_scaling
        if self._postprocessing:
            payload["postprocessing"] = self._postprocessing
        return payload

    async def submit(self, request: GenerationRequest) -> Finished:
        if request.outputs != 1:
            raise UpstreamRejected(f"{NAME} produces exactly one image per job", provider=NAME)
        try:
            response = await post_json(self._client, "/v1/image/create", self.payload(request))
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=True) from exc
        check_response(response)
        flagged = response.headers.get("x-reve-content-violation", "").lower() == "true"
        body = {} if flagged else await json_object_off_loop(response, NAME)
        if flagged or body.get("content_violation") is True:
            raise UpstreamModerated(f"{_MODERATED}: {NAME} flagged the image", provider=NAME)
        encoded = body.get("image")
        if not encoded:
            raise UpstreamRejected(f"{NAME} returned no image", provider=NAME)
        if not isinstance(encoded, str):
            raise UpstreamRejected(
                f"{NAME} answered with an unexpected body: image is not a string", provider=NAME
            )
        data = await asyncio.to_thread(_decode, encoded)  # megabytes of base64: off the loop
        version = body.get("version") or response.headers.get("x-reve-version")
        return Finished(
            images=[OutputImage(data=data, content_type=sniff_image_type(data))],
            served_model=str(version) if version else request.route.upstream_model,
        )


def create_adapter(config: ProviderSettings, context: ProviderContext) -> ReveAdapter:
    options = read_options(NAME, Options, config.options)
    headers = {"Accept": "application/json"}
    if key := api_key(config):
        headers["Authorization"] = f"Bearer {key}"
    return ReveAdapter(
        open_client(NAME, config, context, headers, default_base_url=DEFAULT_BASE_URL),
        version=options.version,
        test_time_scaling=options.test_time_scaling,
        postprocessing=options.postprocessing,
    )
