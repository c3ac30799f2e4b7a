"""fal.ai through its queue API.

``POST https://queue.fal.run/{endpoint_id}`` with ``Authorization: Key <FAL_KEY>`` answers
``{request_id, status_url, response_url, cancel_url, …}``. Those URLs are kept in the task state
and reused as given, because status/result/cancel paths drop the endpoint's sub-path
(``/v1.1-ultra``, ``/edit``) and rebuilding them is a known trap. ``GET status_url`` reports
``IN_QUEUE`` / ``IN_PROGRESS`` / ``COMPLETED``; a completed request's output (or its error, e.g. a
422 ``content_policy_violation``) is at ``response_url``; ``PUT cancel_url`` cancels.

Each endpoint family has its own inputs; ``FAMILIES`` maps our params objects to them (FLUX v1.1,
GPT Image, Seedream, Ideogram v3, Qwen and Wan take a named ``image_size`` rather than an
``aspect_ratio``; reference images become ``image_urls`` and select the family's ``/edit``
endpoint). Unknown params are dropped. Outputs are ``images[].url`` on fal's CDN (``data:`` URIs
in sync mode). ``has_nsfw_concepts`` with any ``true`` means the safety checker blanked an
image → moderated.

An answer we cannot read (not a JSON object; no ``request_id`` or ``status``) is an error: after
the submit it is ``UpstreamRejected`` (fal may have queued, and will bill, a request we cannot
find), after a status or result GET ``UpstreamRetryable`` (asked again until the job deadline).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
    json_object,
    malformed,
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

__all__ = [
    "DEFAULT_BASE_URL",
    "FAMILIES",
    "IDEOGRAM_V3_SPEEDS",
    "FalAdapter",
    "Options",
    "build_input",
    "create_adapter",
    "endpoint",
]

NAME = "fal"
DEFAULT_BASE_URL = "https://queue.fal.run"

_NAMED_SIZES = {
    "1:1": "square_hd",
    "4:3": "landscape_4_3",
    "3:4": "portrait_4_3",
    "16:9": "landscape_16_9",
    "9:16": "portrait_16_9",
}
_GPT_SIZES = {"1:1": "1024x1024", "3:2": "1536x1024", "2:3": "1024x1536"}


def _jpeg(value: Any) -> Any:
    return "jpeg" if value == "jpg" else value


def _magic(value: Any) -> Any:
    return value != "Off"


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _seedream_size(value: Any) -> Any:
    return {"2K": "auto_2K", "4K": "auto_4K"}.get(value, value)


def _nano_resolution(value: Any) -> Any:
    return "0.5K" if value == "512px" else value


def _as_list(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Family:
    """How one group of fal endpoints takes our params.

    ``inputs`` maps our param → fal input name; ``convert`` converts values by *fal* name;
    ``image_size`` says fal wants ``image_size`` (named, or ``{width, height}``) instead of our
    ``aspect_ratio``; ``edit`` is our param whose presence selects the ``/edit`` endpoint.
    """

    prefixes: tuple[str, ...]
    inputs: Mapping[str, str]
    convert: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    image_size: Mapping[str, str] | None = None
    edit: str | None = None
    count: str | None = "num_images"


def _same(*names: str) -> dict[str, str]:
    return {name: name for name in names}


FAMILIES: Sequence[Family] = (
    Family(
        ("fal-ai/gpt-image", "openai/gpt-image"),
        {**_same("quality", "background", "output_format", "input_fidelity"),
         "input_images": "image_urls"},
        {"output_format": _jpeg},
        image_size=_GPT_SIZES,
        edit="input_images",
    ),
    Family(
        ("fal-ai/nano-banana", "google/nano-banana", "fal-ai/gemini"),
        {**_same("aspect_ratio", "resolution", "output_format"), "image_input": "image_urls",
         "google_search": "enable_web_search"},
        {"output_format": _jpeg, "resolution": _nano_resolution},
        edit="image_input",
    ),
    Family(
        ("fal-ai/flux-pro/v1.1-ultra",),
        {**_same("aspect_ratio", "raw", "seed", "safety_tolerance", "output_format",
                 "image_prompt_strength"),
         "image_prompt": "image_url", "prompt_upsampling": "enhance_prompt"},
        {"output_format": _jpeg, "safety_tolerance": str},
    ),
    Family(
        ("fal-ai/flux-pro/v1.1",),
        {**_same("seed", "safety_tolerance", "output_format"),
         "prompt_upsampling": "enhance_prompt"},
        {"output_format": _jpeg, "safety_tolerance": str},
        image_size=_NAMED_SIZES,
    ),
    Family(
        ("fal-ai/flux-2",),
        {**_same("seed", "safety_tolerance", "output_format"), "input_images": "image_urls",
         "guidance": "guidance_scale", "steps": "num_inference_steps",
         "prompt_upsampling": "enable_prompt_expansion"},
        {"output_format": _jpeg, "safety_tolerance": str},
        image_size=_NAMED_SIZES,
        edit="input_images",
    ),
    Family(
        ("fal-ai/ideogram/v3", "fal-ai/ideogram/character"),
        {**_same("seed", "negative_prompt", "rendering_speed"), "style_type": "style",
         "magic_prompt_option": "expand_prompt", "style_reference_images": "image_urls",
         "character_reference_image": "reference_image_urls"},
        {"style": _upper, "expand_prompt": _magic, "reference_image_urls": _as_list,
         "rendering_speed": _upper},
        image_size=_NAMED_SIZES,
    ),
    Family(
        ("fal-ai/ideogram",),
        {**_same("aspect_ratio", "seed", "negative_prompt"), "style_type": "style",
         "magic_prompt_option": "expand_prompt"},
        {"style": lambda value: str(value).lower(), "expand_prompt": _magic},
    ),
    Family(
        ("fal-ai/bytedance/seedream", "bytedance/seedream"),
        {**_same("seed"), "image_input": "image_urls", "size": "image_size",
         "enhance_prompt": "enhance_prompt"},
        {"image_size": _seedream_size},
        image_size=_NAMED_SIZES,
        edit="image_input",
    ),
    Family(
        ("fal-ai/qwen-image-2",),
        {**_same("negative_prompt", "seed"), "image": "image_urls"},
        {"image_urls": _as_list},
        image_size={**_NAMED_SIZES, "21:9": "landscape_16_9"},
        edit="image",
    ),
    Family(
        ("fal-ai/qwen-image",),
        _same("image_url", "strength", "image_size", "num_inference_steps", "guidance_scale",
              "negative_prompt", "acceleration", "output_format", "seed"),
        {"output_format": _jpeg},
    ),
    Family(
        ("fal-ai/wan",),
        {**_same("negative_prompt", "seed"), "image": "image_urls",
         "prompt_extend": "enable_prompt_expansion"},
        {"image_urls": _as_list},
        image_size=_NAMED_SIZES,
        edit="image",
    ),
    Family(("xai/grok-imagine-image",), {**_same("aspect_ratio"), "image": "image_url"},
           edit="image"),
    Family(
        ("fal-ai/kling-image",),
        {**_same("aspect_ratio", "negative_prompt", "image_fidelity"), "image": "image_url"},
    ),
    Family(("fal-ai/reve", "reve/"), _same("aspect_ratio", "output_format", "seed"),
           {"output_format": _jpeg}),
    Family(
        ("fal-ai/imagen4",),
        {**_same("aspect_ratio"), "image_size": "resolution"},
    ),
)  # fmt: skip
"""Endpoint-id prefixes → inputs; the first family with a matching prefix wins."""

IDEOGRAM_V3_SPEEDS: Mapping[str, str] = {
    "ideogram-v3-turbo": "TURBO",
    "ideogram-v3-balanced": "BALANCED",
    "ideogram-v3-quality": "QUALITY",
}
"""Catalog ids that share ``fal-ai/ideogram/v3``: the tier is in the name (and the price), not in
the params, so it is sent as ``rendering_speed`` (fal's default would be ``BALANCED``)."""


def _family(model_id: str) -> Family:
    for family in FAMILIES:
        if model_id.startswith(family.prefixes):
            return family
    raise UpstreamRejected(
        f"fal: no input mapping for endpoint {model_id}; add it to providers.fal.FAMILIES",
        provider=NAME,
    )


def endpoint(model_id: str, params: Mapping[str, Any]) -> str:
    """The endpoint to call: the family's ``/edit`` variant when reference images are given."""
    family = _family(model_id)
    if family.edit is None or not params.get(family.edit) or model_id.endswith("/edit"):
        return model_id
    if model_id.endswith("/text-to-image"):
        return model_id.removesuffix("/text-to-image") + "/edit"
    return model_id + "/edit"


def build_input(
    model_id: str, prompt: str, params: Mapping[str, Any], outputs: int = 1
) -> dict[str, Any]:
    """The queue submit body for ``model_id``: params renamed, converted, unknown ones dropped."""
    family = _family(model_id)
    payload: dict[str, Any] = {"prompt": prompt}
    if family.image_size is not None:
        width, height = params.get("width"), params.get("height")
        ratio = params.get("aspect_ratio")
        if isinstance(width, int) and isinstance(height, int):
            payload["image_size"] = {"width": width, "height": height}
        elif isinstance(ratio, str) and ratio in family.image_size:
            payload["image_size"] = family.image_size[ratio]
    for ours, theirs in family.inputs.items():
        value = params.get(ours)
        if value is None or theirs in payload:
            continue
        convert = family.convert.get(theirs)
        payload[theirs] = convert(value) if convert is not None else value
    if family.count is not None and outputs > 1:
        payload[family.count] = outputs
    return payload


_PROGRESS = re.compile(r"(\d{1,3})\s*%")


def _image(item: Any) -> OutputImage:
    if not isinstance(item, Mapping):
        raise UpstreamRejected("fal: an output image was not an object", provider=NAME)
    url = str(item.get("url") or "")
    content_type = item.get("content_type")
    if url.startswith("data:"):
        header, _, encoded = url.partition(",")
        try:
            data = base64.b64decode(encoded, validate=True)
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
        model_id = request.route.upstream_model
        params = request.params
        speed = IDEOGRAM_V3_SPEEDS.get(request.model)
        if speed is not None and "rendering_speed" not in params:
            params = {**params, "rendering_speed": speed}
        path = "/" + endpoint(model_id, params)
        body = build_input(model_id, request.prompt, params, request.outputs)
        try:
            response = await self._client.post(path, json=body)
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
        output = json_object(response, NAME, polling=True)
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
            images=[_image(item) for item in images],
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
