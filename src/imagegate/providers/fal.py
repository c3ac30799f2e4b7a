"""fal.ai through its queue API.

``POST https://queue.fal.run/{endpoint_id}`` with ``Authorization: Key <FAL_KEY>`` answers
``{request_id, status_url, response_url, cancel_url, …}``. Those URLs are kept in the task state
and reused as given, because status/result/cancel paths drop the endpoint's sub-path
(``/v1.1-ultra``, ``/edit``) and rebuilding them is a known trap. ``GET status_url`` reports
``IN_QUEUE`` / ``IN_PROGRESS`` / ``COMPLETED``; a completed request's output (or its error, e.g. a
422 ``content_policy_violation``) is at ``response_url``; ``PUT cancel_url`` cancels.

Each endpoint has its own inputs, declared with the model in the catalog and carried here in
``route.inputs`` (FLUX v1.1, GPT Image, Seedream, Ideogram v3, Qwen and Wan take a named
``image_size`` rather than an ``aspect_ratio``; reference images become ``image_urls`` and select
the endpoint's ``/edit`` variant); the value conversions they name are ``CONVERSIONS``. Params a
route does not name are dropped. Outputs are ``images[].url`` on fal's CDN (``data:`` URIs
in sync mode). ``has_nsfw_concepts`` with any ``true`` means the safety checker blanked an
image → moderated.

An answer we cannot read (not a JSON object; no ``request_id`` or ``status``) is an error: after
the submit it is ``UpstreamRejected`` (fal may have queued, and will bill, a request we cannot
find), after a status or result GET ``UpstreamRetryable`` (asked again until the job deadline).
"""

from __future__ import annotations

import asyncio
import binascii
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx2

from imagegate.errors import (
    UpstreamModerated,
    UpstreamRejected,
    UpstreamTaskLost,
)
from imagegate.providers.base import (
    Adapter,
    ProviderOptions,
    api_key,
    open_client,
    read_options,
)
from imagegate.providers.http import (
    clean_message,
    decode_base64,
    json_object,
    json_object_off_loop,
    malformed,
    post_json,
    raise_for_upstream,
    transport_error,
)
from imagegate.providers.port import (
    Finished,
    GenerationRequest,
    OutputImage,
    Pending,
    ProviderContext,
    Submitted,
    TaskHandle,
)
from imagegate.settings import ProviderSettings
from imagegate.types import Route, RouteInputs

__all__ = [
    "CONVERSIONS",
    "DEFAULT_BASE_URL",
    "FalAdapter",
    "Options",
    "build_input",
    "create_adapter",
    "endpoint",
]

NAME = "fal"
DEFAULT_BASE_URL = "https://queue.fal.run"


def _jpeg(value: Any) -> Any:
    return "jpeg" if value == "jpg" else value


def _magic(value: Any) -> Any:
    return value != "Off"


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return str(value).lower()


def _seedream_size(value: Any) -> Any:
    return {"2K": "auto_2K", "4K": "auto_4K"}.get(value, value)


def _nano_resolution(value: Any) -> Any:
    return "0.5K" if value == "512px" else value


def _as_list(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


CONVERSIONS: Mapping[str, Callable[[Any], Any]] = {
    "jpeg": _jpeg,
    "magic": _magic,
    "upper": _upper,
    "lower": _lower,
    "list": _as_list,
    "text": str,
    "seedream_size": _seedream_size,
    "nano_resolution": _nano_resolution,
}
"""The value conversions a route's ``RouteInputs.convert`` may name, by fal input."""


def _inputs(route: Route) -> RouteInputs:
    if route.inputs is None:
        raise UpstreamRejected(
            f"fal: no input mapping for endpoint {route.upstream_model}; declare its inputs on "
            "the model's catalog route",
            provider=NAME,
        )
    return route.inputs


def endpoint(route: Route, params: Mapping[str, Any]) -> str:
    """The endpoint to call: the route's ``/edit`` variant when reference images are given."""
    inputs, model_id = _inputs(route), route.upstream_model
    if inputs.edit is None or not params.get(inputs.edit) or model_id.endswith("/edit"):
        return model_id
    if model_id.endswith("/text-to-image"):
        return model_id.removesuffix("/text-to-image") + "/edit"
    return model_id + "/edit"


def build_input(
    route: Route, prompt: str, params: Mapping[str, Any], outputs: int = 1
) -> dict[str, Any]:
    """The queue submit body for ``route``: params renamed and converted as the route's inputs
    say, params it does not name dropped, and its ``defaults`` for params the request left out."""
    inputs = _inputs(route)
    params = {**inputs.defaults, **params}
    payload: dict[str, Any] = {"prompt": prompt}
    if inputs.sizes is not None:
        width, height = params.get("width"), params.get("height")
        ratio = params.get("aspect_ratio")
        if isinstance(width, int) and isinstance(height, int):
            payload["image_size"] = {"width": width, "height": height}
        elif isinstance(ratio, str) and ratio in inputs.sizes:
            payload["image_size"] = inputs.sizes[ratio]
    for ours, theirs in inputs.names.items():
        value = params.get(ours)
        if value is None or theirs in payload:
            continue
        convert = inputs.convert.get(theirs)
        payload[theirs] = CONVERSIONS[convert](value) if convert is not None else value
    if inputs.count is not None and outputs > 1:
        payload[inputs.count] = outputs
    return payload


_PROGRESS = re.compile(r"(\d{1,3})\s*%")


def _images(items: list[Any]) -> list[OutputImage]:
    """The outputs of a result; decoding data URIs blocks, so it runs in a worker thread."""
    return [_image(item) for item in items]


def _image(item: Any) -> OutputImage:
    if not isinstance(item, Mapping):
        raise UpstreamRejected("fal: an output image was not an object", provider=NAME)
    url = str(item.get("url") or "")
    content_type = item.get("content_type")
    if url.startswith("data:"):
        header, _, encoded = url.partition(",")
        try:
            data = decode_base64(encoded)
        except binascii.Error as exc:
            raise UpstreamRejected("fal: an output data URI was corrupt", provider=NAME) from exc
        return OutputImage(data=data, content_type=content_type or header[5:].split(";")[0])
    if not url:
        raise UpstreamRejected("fal: an output image had no url", provider=NAME)
    return OutputImage(url=url, content_type=str(content_type) if content_type else None)


def _detail(body: Any) -> tuple[str | None, bool]:
    """fal's error text, and whether it is a content-policy refusal."""
    if not isinstance(body, Mapping):
        return None, False
    detail = body.get("detail")
    moderated = body.get("error_type") == "content_policy_violation"
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, Mapping):
                moderated = moderated or item.get("type") == "content_policy_violation"
                location = ".".join(str(p) for p in item.get("loc") or [] if p != "body")
                message = str(item.get("msg") or "")
                parts.append(f"{location}: {message}" if location else message)
        return clean_message("; ".join(parts)) or None, moderated
    text = detail or body.get("error")
    return (clean_message(text) if text else None), moderated


def _raise(response: httpx2.Response) -> None:
    """Moderation first (fal sends it as a 422), then the shared status mapping."""
    if response.status_code < 300:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    text, moderated = _detail(body)
    moderated = moderated or response.headers.get("x-fal-error-type") == "content_policy_violation"
    if moderated:
        raise UpstreamModerated(
            f"Provider returned an error: content policy violation ({text})", provider=NAME
        )
    raise_for_upstream(response, NAME, text or (clean_message(response.text) or None))


class Options(ProviderOptions):
    """fal takes no options."""


class FalAdapter(Adapter):
    name = NAME
    supports_cancel = True

    def __init__(self, client: httpx2.AsyncClient) -> None:
        super().__init__(client)

    def _same_host(self, url: Any) -> str | None:
        """Only URLs on the queue host are followed: the key must never leave fal."""
        if not isinstance(url, str) or not url:
            return None
        parts, base = urlsplit(url), self._client.base_url
        return url if parts.hostname == base.host and parts.port == base.port else None

    async def submit(self, request: GenerationRequest) -> Submitted | Finished:
        route, model_id = request.route, request.route.upstream_model
        body = build_input(route, request.prompt, request.params, request.outputs)
        path = "/" + endpoint(route, request.params)
        try:
            response = await post_json(self._client, path, body)
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=True) from exc
        _raise(response)
        answer = json_object(response, NAME, polling=False)
        request_id = answer.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise malformed(NAME, "no request_id", polling=False)
        owner_alias = "/".join(model_id.split("/")[:2])
        base = str(self._client.base_url).rstrip("/")
        fallback = f"{base}/{owner_alias}/requests/{request_id}"
        state = {
            "status_url": self._same_host(answer.get("status_url")) or f"{fallback}/status",
            "response_url": self._same_host(answer.get("response_url")) or fallback,
            "cancel_url": self._same_host(answer.get("cancel_url")) or f"{fallback}/cancel",
        }
        return Submitted(request_id, state, poll_after=2.0)

    async def poll(self, request: GenerationRequest, task: TaskHandle) -> Pending | Finished:
        status_url = str(task.state["status_url"])
        try:
            response = await self._client.get(status_url, params={"logs": "1"})
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=False) from exc
        if response.status_code == 404:
            raise UpstreamTaskLost(f"fal: request {task.task_id} not found", provider=NAME)
        _raise(response)
        status = json_object(response, NAME, polling=True)
        state = status.get("status")
        if not isinstance(state, str):
            raise malformed(NAME, "no request status", polling=True)
        if state == "COMPLETED":
            return await self._result(request, task, status)
        if state == "IN_PROGRESS":
            progress = None
            for entry in status.get("logs") or []:
                match = _PROGRESS.search(
                    str(entry.get("message") if isinstance(entry, Mapping) else entry)
                )
                if match:
                    progress = min(99, int(match[1]))
            return Pending(progress=progress if progress is not None else 0, poll_after=1.0)
        return Pending(progress=0, poll_after=2.0)

    async def _result(
        self, request: GenerationRequest, task: TaskHandle, status: Mapping[str, Any]
    ) -> Finished:
        try:
            response = await self._client.get(str(task.state["response_url"]))
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=False) from exc
        if response.status_code == 404:
            raise UpstreamTaskLost(f"fal: result of {task.task_id} not found", provider=NAME)
        _raise(response)
        if status.get("error"):
            text, moderated = _detail(status)
            if moderated:
                raise UpstreamModerated(
                    f"Provider returned an error: content policy violation ({text})",
                    provider=NAME,
                )
            raise UpstreamRejected(f"Provider returned an error: {text}", provider=NAME)
        output = await json_object_off_loop(response, NAME, polling=True)
        flags = output.get("has_nsfw_concepts")
        if isinstance(flags, list) and any(flag is True for flag in flags):
            raise UpstreamModerated(
                "Provider returned an error: content policy violation (NSFW content detected)",
                provider=NAME,
            )
        images = output.get("images") or ([output["image"]] if output.get("image") else [])
        if not images:
            raise UpstreamRejected("fal: the request completed without images", provider=NAME)
        return Finished(
            images=await asyncio.to_thread(_images, images),
            served_model=request.route.upstream_model,
        )

    async def cancel(self, request: GenerationRequest, task: TaskHandle) -> None:
        try:
            response = await self._client.put(str(task.state["cancel_url"]))
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=False) from exc
        if response.status_code in (400, 404):
            return  # already completed or gone: nothing left to stop
        _raise(response)


def create_adapter(config: ProviderSettings, context: ProviderContext) -> FalAdapter:
    read_options(NAME, Options, config.options)
    headers = {"Authorization": f"Key {api_key(config)}"}
    return FalAdapter(
        open_client(NAME, config, context, headers, default_base_url=DEFAULT_BASE_URL)
    )
