"""Replicate predictions: one adapter for every catalog model Replicate hosts.

``POST /v1/models/{owner}/{name}/predictions`` (official models; a ``owner/name:version`` route
uses ``POST /v1/predictions`` with ``version``) → poll ``GET /v1/predictions/{id}`` through
``starting`` / ``processing`` to ``succeeded`` / ``failed`` / ``canceled`` (``aborted`` when a
``Cancel-After`` deadline passed before it started — not charged, so retryable). Cancel is
``POST /v1/predictions/{id}/cancel``. Auth is ``Authorization: Bearer <token>``.

Every model has its own input schema, declared with the model in the catalog and carried here in
``route.inputs``: the keys of our params object the slug accepts (renamed where Replicate's name
differs), their value conversions (``CONVERSIONS``) and the input that carries an image count.
Params the slug does not take are dropped rather than sent, because some Replicate models reject
unknown inputs.

Outputs are URLs on ``replicate.delivery`` (deleted after one hour — the worker downloads them at
once) or, in sync mode, ``data:`` URIs, which are decoded here. Safety failures arrive as a
``failed`` prediction whose ``error`` mentions NSFW / sensitive content (``E005``) → moderated.

Options: ``wait`` (seconds, 1–60) sends ``Prefer: wait=N`` so quick models finish in ``submit``;
off by default, because a held-open paid POST that times out leaves no prediction id to resume.
``cancel_after`` (e.g. ``"10m"``) sends ``Cancel-After``.

An answer we cannot read (not a JSON object, no ``id`` or ``status``) is an error: after a create
it is ``UpstreamRejected`` (Replicate may have started, and will bill, a prediction we cannot
find), after a poll ``UpstreamRetryable`` (the GET is asked again until the job deadline).
"""

from __future__ import annotations

import asyncio
import binascii
import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

import httpx2

from imagegate.errors import (
    UpstreamModerated,
    UpstreamRejected,
    UpstreamRetryable,
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
    malformed,
    parse_off_loop,
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
    "Options",
    "ReplicateAdapter",
    "build_input",
    "create_adapter",
]

NAME = "replicate"
DEFAULT_BASE_URL = "https://api.replicate.com/v1"

_NAMED_SIZES = {
    "square": "1:1",
    "square_hd": "1:1",
    "portrait_4_3": "3:4",
    "portrait_16_9": "9:16",
    "landscape_4_3": "4:3",
    "landscape_16_9": "16:9",
}
"""fal-style named sizes (``qwenImageParams.image_size``) → the aspect ratio Replicate takes."""
_FLUX_MP = re.compile(r"^(\d+(?:\.\d+)?)\s*MP$", re.IGNORECASE)


def _megapixels(value: Any) -> Any:
    """Apiframe writes ``1MP``; Replicate's FLUX.2 enum is ``1 MP``."""
    match = _FLUX_MP.match(value) if isinstance(value, str) else None
    return f"{match[1]} MP" if match else value


def _jpg(value: Any) -> Any:
    """Replicate's FLUX/Ideogram enums say ``jpg``; OpenAI-style params may say ``jpeg``."""
    return "jpg" if value == "jpeg" else value


def _jpeg(value: Any) -> Any:
    """Seedream 5's enum says ``jpeg``; ``seedreamParams`` say ``jpg``."""
    return "jpeg" if value == "jpg" else value


def _not_none(value: Any) -> Any:
    """qwen-image's ``acceleration`` becomes Replicate's ``go_fast``."""
    return value != "none"


CONVERSIONS: Mapping[str, Callable[[Any], Any]] = {
    "jpg": _jpg,
    "jpeg": _jpeg,
    "megapixels": _megapixels,
    "not_none": _not_none,
}
"""The value conversions a route's ``RouteInputs.convert`` may name, by Replicate input."""


def _inputs(route: Route) -> RouteInputs:
    if route.inputs is None:
        name = route.upstream_model.split(":", 1)[0]
        raise UpstreamRejected(
            f"replicate: no input mapping for model {name}; declare its inputs on the model's "
            "catalog route",
            provider=NAME,
        )
    return route.inputs


def build_input(
    route: Route, prompt: str, params: Mapping[str, Any], outputs: int = 1
) -> dict[str, Any]:
    """The prediction ``input`` for ``route``: params renamed and converted as the route's inputs
    say (``aspect_ratio`` through ``sizes`` when the route has them). A param the route does not
    name is not sent; the catalog refuses it on the route (``RouteInputs.refuses``) so such a job
    is routed elsewhere or refused at submit, never sent without it."""
    inputs = _inputs(route)
    slug = route.upstream_model.split(":", 1)[0]
    values = {**inputs.defaults, **params}
    if "image_size" in values and values["image_size"] in _NAMED_SIZES:
        values.setdefault("aspect_ratio", _NAMED_SIZES[values.pop("image_size")])
    payload: dict[str, Any] = {"prompt": prompt}
    for ours, theirs in inputs.names.items():
        value = values.get(ours)
        if value is None or theirs in payload:
            continue
        if ours == "aspect_ratio" and inputs.sizes is not None:
            value = inputs.sizes.get(value, value)  # a model that takes its shape as a size
        convert = inputs.convert.get(theirs)
        payload[theirs] = CONVERSIONS[convert](value) if convert is not None else value
    if outputs > 1:
        if inputs.count is None:
            # Sending one prediction would deliver one image for a job priced per image.
            raise UpstreamRejected(
                f"replicate: {slug} makes one image per prediction, not {outputs}; ask for one "
                "image",
                provider=NAME,
            )
        payload[inputs.count] = outputs
        if slug.startswith("bytedance/"):
            payload["sequential_image_generation"] = "auto"
    return payload


_MODERATION = re.compile(
    r"nsfw|sensitive|\bE005\b|safety|flagged|content polic|moderat", re.IGNORECASE
)
_PROGRESS = re.compile(r"(\d{1,3})%\|")
_CONTENT_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
}


def _content_type(url: str) -> str | None:
    extension = url.split("?", 1)[0].rsplit(".", 1)[-1].lower()
    return _CONTENT_TYPES.get(extension)


def _images(values: list[Any]) -> list[OutputImage]:
    """The outputs of a prediction (decoding data URIs blocks: ``_interpret`` runs in a thread)."""
    return [_image(value) for value in values]


def _image(value: Any) -> OutputImage:
    url = str(value)
    if url.startswith("data:"):
        header, _, encoded = url.partition(",")
        try:
            data = decode_base64(encoded)
        except binascii.Error as exc:
            raise UpstreamRejected(
                "replicate: an output data URI was corrupt", provider=NAME
            ) from exc
        return OutputImage(data=data, content_type=header[5:].split(";")[0] or None)
    return OutputImage(url=url, content_type=_content_type(url))


def _error_text(response: httpx2.Response) -> str | None:
    """RFC 7807 ``detail`` (plus the invalid fields of a 422), else the raw text."""
    try:
        body = response.json()
    except ValueError:
        return clean_message(response.text) if response.text.strip() else None
    if not isinstance(body, Mapping):
        return None
    detail = body.get("detail") or body.get("title")
    return clean_message(detail) if detail else None


def _prediction(response: httpx2.Response, *, polling: bool) -> dict[str, Any]:
    """The prediction object of a 2xx answer; anything without an ``id`` and ``status`` is
    malformed."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise malformed(NAME, "a body that is not a JSON object", polling=polling)
    if not isinstance(body.get("id"), str) or not isinstance(body.get("status"), str):
        raise malformed(NAME, "no prediction id or status", polling=polling)
    return body


class Options(ProviderOptions):
    wait: int | None = None
    """Seconds (clamped to 1–60) sent as ``Prefer: wait=N``; off by default."""
    cancel_after: str | None = None
    """Sent as ``Cancel-After`` (e.g. ``"10m"``)."""


class ReplicateAdapter(Adapter):
    name = NAME
    supports_cancel = True

    def __init__(
        self,
        client: httpx2.AsyncClient,
        *,
        wait: int | None = None,
        cancel_after: str | None = None,
    ) -> None:
        super().__init__(client)
        self._wait = wait
        self._cancel_after = cancel_after

    async def submit(self, request: GenerationRequest) -> Submitted | Finished:
        slug = request.route.upstream_model
        body: dict[str, Any] = {
            "input": build_input(request.route, request.prompt, request.params, request.outputs)
        }
        if ":" in slug:
            path = "/predictions"
            body["version"] = slug
        else:
            path = f"/models/{slug}/predictions"
        headers = {}
        if self._wait:
            headers["Prefer"] = f"wait={self._wait}"
        if self._cancel_after:
            headers["Cancel-After"] = self._cancel_after
        try:
            response = await self._client.post(path, json=body, headers=headers)
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=True) from exc
        raise_for_upstream(response, NAME, _error_text(response))
        prediction = await parse_off_loop(response, functools.partial(_prediction, polling=False))
        # A data URI output is megabytes of base64: decoded off the loop.
        answer = await asyncio.to_thread(self._interpret, prediction, request)
        if isinstance(answer, Finished):
            return answer
        return Submitted(str(prediction["id"]), {}, poll_after=answer.poll_after)

    async def poll(self, request: GenerationRequest, task: TaskHandle) -> Pending | Finished:
        try:
            response = await self._client.get(f"/predictions/{task.task_id}")
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=False) from exc
        if response.status_code == 404:
            raise UpstreamTaskLost(f"replicate: prediction {task.task_id} not found", provider=NAME)
        raise_for_upstream(response, NAME, _error_text(response))
        prediction = await parse_off_loop(response, functools.partial(_prediction, polling=True))
        return await asyncio.to_thread(self._interpret, prediction, request)

    def _interpret(
        self, prediction: Mapping[str, Any], request: GenerationRequest
    ) -> Pending | Finished:
        status = prediction.get("status")
        if status == "succeeded":
            output = prediction.get("output")
            items = output if isinstance(output, list) else [output] if output else []
            if not items:
                raise UpstreamRejected(
                    "replicate: the prediction succeeded without output", provider=NAME
                )
            return Finished(
                images=_images(items),
                served_model=str(prediction.get("model") or request.route.upstream_model),
            )
        if status == "failed":
            error = clean_message(prediction.get("error") or "prediction failed")
            if _MODERATION.search(error):
                raise UpstreamModerated(
                    f"Provider returned an error: content policy violation ({error})",
                    provider=NAME,
                )
            raise UpstreamRejected(f"Provider returned an error: {error}", provider=NAME)
        if status == "aborted":
            raise UpstreamRetryable(
                "replicate: the prediction hit its Cancel-After deadline before starting",
                provider=NAME,
            )
        if status == "canceled":
            raise UpstreamRejected("replicate: the prediction was canceled", provider=NAME)
        progress = None
        matches = _PROGRESS.findall(str(prediction.get("logs") or ""))
        if matches:
            progress = min(99, int(matches[-1]))
        return Pending(progress=progress, poll_after=1.0 if status == "processing" else 2.0)

    async def cancel(self, request: GenerationRequest, task: TaskHandle) -> None:
        try:
            response = await self._client.post(f"/predictions/{task.task_id}/cancel")
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=False) from exc
        if response.status_code == 404:
            return  # already gone: nothing left to stop
        raise_for_upstream(response, NAME, _error_text(response))


def create_adapter(config: ProviderSettings, context: ProviderContext) -> ReplicateAdapter:
    options = read_options(NAME, Options, config.options)
    headers = {"Authorization": f"Bearer {api_key(config)}"}
    return ReplicateAdapter(
        open_client(NAME, config, context, headers, default_base_url=DEFAULT_BASE_URL),
        wait=max(1, min(60, options.wait)) if options.wait else None,
        cancel_after=options.cancel_after or None,
    )
