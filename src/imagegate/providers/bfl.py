"""Black Forest Labs (FLUX) adapter: ``POST /v1/<endpoint>`` → poll the returned ``polling_url``.

``request.route.upstream_model`` is the BFL endpoint name (``flux-pro-1.1``, ``flux-pro-1.1-ultra``,
``flux-2-pro``, ``flux-2-flex``, ``flux-2-max``, ``flux-2-klein-9b`` …); our catalog ids
``flux-1.1-pro`` / ``flux-1.1-pro-ultra`` are accepted too, and ``options["models"]`` may map any
id to an endpoint. Each endpoint family has its own input schema, so ``fluxParams`` is mapped per
family: FLUX1.1 [pro] takes pixel ``width``/``height`` (multiples of 32, 256–1440), Ultra takes an
``aspect_ratio`` and ``raw``, FLUX.2 takes ``width``/``height`` (multiples of 16, ≤ 4 MP, 0 = let
the model decide) and up to eight ``input_image*`` references.

Polling follows the ``polling_url`` BFL returned, because the task lives on the regional host that
accepted it. That URL is only followed on hosts we trust (the configured base host and
``*.bfl.ai``/``*.bfl.ml``): our ``x-key`` must never be sent to a host a response named.
``Ready`` results carry a signed ``sample`` URL that dies after ten minutes, so it is returned as an
``OutputImage`` URL for the worker to download at once.

Options: ``region`` (``global``/``eu``/``us``), ``models`` (id → endpoint), ``safety_tolerance``
(default 2), ``inline_inputs`` (send input images as base64 instead of URLs, for inputs BFL cannot
reach), ``poll_interval`` (seconds, default 2: the longest wait between polls).

Polling follows BFL's advice ("poll every 0.5–2 s with backoff"): the first poll comes 0.5 s after
the submit and every ``Pending`` answer doubles the wait, up to ``poll_interval``. The number of
polls so far is kept in the task state, so the cadence survives a worker restart.

An answer we cannot read (not a JSON object, no ``id`` or ``status``) is an error: after a submit
it is ``UpstreamRejected`` (BFL may have accepted and billed the task, and we have no id to poll),
after a poll ``UpstreamRetryable`` (the GET is asked again until the job deadline).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx2
from pydantic import Field

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
from imagegate.types import InputFetcher

__all__ = ["BflAdapter", "Options", "build_payload", "create_adapter"]

NAME = "bfl"
REGION_HOSTS = {
    "global": "https://api.bfl.ai",
    "eu": "https://api.eu.bfl.ai",
    "us": "https://api.us.bfl.ai",
}
TRUSTED_DOMAINS = ("bfl.ai", "bfl.ml")
_ALIASES = {"flux-1.1-pro": "flux-pro-1.1", "flux-1.1-pro-ultra": "flux-pro-1.1-ultra"}
_FORMATS = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "webp": "webp"}
_CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
_MEGAPIXELS = {"0.5MP": 0.5, "1MP": 1.0, "2MP": 2.0, "4MP": 4.0}
_MODERATED = frozenset({"Request Moderated", "Content Moderated"})
FIRST_POLL_SECONDS = 0.5
"""BFL's advised shortest polling interval; waits double from here up to ``poll_interval``."""


def endpoint_for(upstream_model: str, aliases: Mapping[str, str]) -> str:
    """The BFL path segment for a route's model id."""
    return aliases.get(upstream_model) or _ALIASES.get(upstream_model) or upstream_model


def _ratio(value: Any) -> tuple[float, float] | None:
    if not isinstance(value, str) or ":" not in value:
        return None
    left, _, right = value.partition(":")
    try:
        width, height = float(left), float(right)
    except ValueError:
        return None
    return (width, height) if width > 0 and height > 0 else None


def _snap(value: float, multiple: int, low: int, high: int) -> int:
    return max(low, min(high, round(value / multiple) * multiple))


def _size_for(
    ratio: tuple[float, float], megapixels: float, multiple: int, low: int, high: int
) -> tuple[int, int]:
    """Pixel dimensions with the given aspect ratio and area, snapped to what BFL accepts."""
    width, height = ratio
    scale = math.sqrt(megapixels * 1_000_000 / (width * height))
    return (
        _snap(width * scale, multiple, low, high),
        _snap(height * scale, multiple, low, high),
    )


def _common(request: GenerationRequest, safety_tolerance: int, limit: int) -> dict[str, Any]:
    params = request.params
    payload: dict[str, Any] = {
        "prompt": request.prompt,
        "safety_tolerance": max(0, min(limit, safety_tolerance)),
        "output_format": output_format(params),
    }
    if isinstance(params.get("seed"), int):
        payload["seed"] = params["seed"]
    return payload


def output_format(params: Mapping[str, Any]) -> str:
    """BFL's ``OutputFormat``: our ``jpg`` is its ``jpeg``; BFL's default is JPEG too."""
    return _FORMATS.get(str(params.get("output_format") or "jpeg").lower(), "jpeg")


def _pro11(request: GenerationRequest, payload: dict[str, Any]) -> None:
    params = request.params
    width, height = params.get("width"), params.get("height")
    if isinstance(width, int) and isinstance(height, int):
        payload["width"] = _snap(width, 32, 256, 1440)
        payload["height"] = _snap(height, 32, 256, 1440)
    elif (ratio := _ratio(params.get("aspect_ratio"))) is not None:
        payload["width"], payload["height"] = _size_for(ratio, 1.0, 32, 256, 1440)
    if "prompt_upsampling" in params:
        payload["prompt_upsampling"] = bool(params["prompt_upsampling"])


def _ultra(request: GenerationRequest, payload: dict[str, Any]) -> None:
    params = request.params
    if _ratio(params.get("aspect_ratio")) is not None:
        payload["aspect_ratio"] = params["aspect_ratio"]
    for name in ("raw", "prompt_upsampling"):
        if name in params:
            payload[name] = bool(params[name])
    if isinstance(params.get("image_prompt_strength"), int | float):
        payload["image_prompt_strength"] = float(params["image_prompt_strength"])


def _flux2(request: GenerationRequest, payload: dict[str, Any], flex: bool) -> None:
    params = request.params
    width, height = params.get("width"), params.get("height")
    resolution = params.get("resolution")
    aspect = params.get("aspect_ratio")
    if isinstance(width, int) and isinstance(height, int):
        payload["width"] = _snap(width, 16, 64, 4096)
        payload["height"] = _snap(height, 16, 64, 4096)
    elif "match_input_image" not in (aspect, resolution):
        ratio = _ratio(aspect)
        megapixels = _MEGAPIXELS.get(str(resolution).replace(" ", "")) if resolution else None
        if ratio is not None or megapixels is not None:
            payload["width"], payload["height"] = _size_for(
                ratio or (1.0, 1.0), megapixels or 1.0, 16, 64, 4096
            )
    if flex:
        for name in ("guidance", "steps"):
            if isinstance(params.get(name), int | float):
                payload[name] = params[name]
        if "prompt_upsampling" in params:
            payload["prompt_upsampling"] = bool(params["prompt_upsampling"])


def build_payload(
    request: GenerationRequest, endpoint: str, safety_tolerance: int = 2
) -> dict[str, Any]:
    """The JSON body for ``POST /v1/<endpoint>`` (input images are added by the adapter)."""
    if endpoint.startswith("flux-2-"):
        payload = _common(request, safety_tolerance, 5)
        _flux2(request, payload, flex=endpoint.startswith("flux-2-flex"))
    elif endpoint.startswith("flux-pro-1.1-ultra"):
        payload = _common(request, safety_tolerance, 6)
        _ultra(request, payload)
    else:
        payload = _common(request, safety_tolerance, 6)
        _pro11(request, payload)
    return payload


def _input_limit(endpoint: str) -> int:
    return 4 if endpoint.startswith("flux-2-klein") else 8


def _error_message(response: httpx2.Response) -> str | None:
    """BFL's text from ``{"detail": "…"}``, FastAPI's ``{"detail": [{"msg", "loc"}]}`` or
    ``{"error", "message"}``."""
    try:
        body = response.json()
    except ValueError:
        return response.text or None
    if not isinstance(body, dict):
        return None
    detail = body.get("detail")
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
        return "; ".join(parts) or None
    for key in ("message", "detail", "error"):
        if isinstance(body.get(key), str):
            return str(body[key])
    return None


class Options(ProviderOptions):
    region: str = "global"
    """``global``, ``eu`` or ``us`` (checked even when ``base_url`` is set)."""
    models: dict[str, str] = Field(default_factory=dict)
    """Route model id → BFL endpoint name."""
    safety_tolerance: int = 2
    """Sent on every request, clamped to each endpoint's range."""
    inline_inputs: bool = False
    """Send FLUX.2 input images as base64 instead of URLs."""
    poll_interval: float = Field(default=2.0, gt=0)


class BflAdapter(Adapter):
    name = NAME

    def __init__(
        self,
        client: httpx2.AsyncClient,
        fetch_input: InputFetcher,
        *,
        aliases: Mapping[str, str],
        safety_tolerance: int = 2,
        inline_inputs: bool = False,
        poll_interval: float = 2.0,
    ) -> None:
        super().__init__(client)
        self._fetch_input = fetch_input
        self._aliases = dict(aliases)
        self._safety_tolerance = safety_tolerance
        self._inline_inputs = inline_inputs
        self._poll_interval = poll_interval

    async def _reference(self, url: str, *, inline: bool) -> str:
        if not inline:
            return url
        fetched = await self._fetch_input(url)
        return base64.b64encode(fetched.data).decode("ascii")

    async def _add_inputs(
        self, request: GenerationRequest, endpoint: str, payload: dict[str, Any]
    ) -> None:
        params = request.params
        if endpoint.startswith("flux-2-"):
            images = [str(u) for u in params.get("input_images") or []]
            limit = _input_limit(endpoint)
            if len(images) > limit:
                raise UpstreamRejected(
                    f"Provider returned an error: {endpoint} accepts at most {limit} input "
                    f"images, got {len(images)}",
                    provider=NAME,
                )
            for index, url in enumerate(images):
                key = "input_image" if index == 0 else f"input_image_{index + 1}"
                payload[key] = await self._reference(url, inline=self._inline_inputs)
        elif params.get("image_prompt"):
            # FLUX1.1 takes the Redux image prompt as base64 only.
            payload["image_prompt"] = await self._reference(
                str(params["image_prompt"]), inline=True
            )

    async def submit(self, request: GenerationRequest) -> Submitted:
        endpoint = endpoint_for(request.route.upstream_model, self._aliases)
        payload = build_payload(request, endpoint, self._safety_tolerance)
        await self._add_inputs(request, endpoint, payload)
        try:
            response = await post_json(self._client, f"/v1/{endpoint}", payload)
        except httpx2.TransportError as exc:
            # An accepted submit is billed and we would never learn its id: do not resubmit.
            raise transport_error(exc, NAME, sent=True) from exc
        raise_for_upstream(response, NAME, _error_message(response))
        body = json_object(response, NAME, polling=False)
        task_id = body.get("id")
        if not isinstance(task_id, str) or not task_id:
            raise malformed(NAME, "no task id", polling=False)
        state = {"polling_url": str(body.get("polling_url") or "")}
        return Submitted(task_id, state, poll_after=self._backoff(0))

    def _backoff(self, polls: int) -> float:
        """The wait before the next poll after ``polls`` pending answers."""
        return min(self._poll_interval, FIRST_POLL_SECONDS * (1 << min(polls, 16)))

    def _trusted(self, url: str) -> bool:
        host = urlsplit(url).hostname or ""
        if host == self._client.base_url.host:
            return True
        return any(host == domain or host.endswith("." + domain) for domain in TRUSTED_DOMAINS)

    async def poll(self, request: GenerationRequest, task: TaskHandle) -> Pending | Finished:
        polling_url = str(task.state.get("polling_url") or "")
        try:
            if polling_url and self._trusted(polling_url):
                response = await self._client.get(polling_url)
            else:
                response = await self._client.get("/v1/get_result", params={"id": task.task_id})
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=False) from exc
        if response.status_code == 404:
            raise UpstreamTaskLost(f"bfl: task {task.task_id} not found", provider=NAME)
        raise_for_upstream(response, NAME, _error_message(response))
        body = json_object(response, NAME, polling=True)
        if not isinstance(body.get("status"), str):
            raise malformed(NAME, "no task status", polling=True)
        return self._translate(request, task, body)

    def _translate(
        self, request: GenerationRequest, task: TaskHandle, body: Mapping[str, Any]
    ) -> Pending | Finished:
        status = str(body.get("status"))
        if status == "Ready":
            result = body.get("result") or {}
            sample = result.get("sample") if isinstance(result, dict) else None
            if not sample:
                raise UpstreamRejected("bfl: Ready without a result sample", provider=NAME)
            content_type = _CONTENT_TYPES[output_format(request.params)]
            return Finished(
                images=[OutputImage(url=str(sample), content_type=content_type)],
                served_model=endpoint_for(request.route.upstream_model, self._aliases),
            )
        if status in _MODERATED:
            raise UpstreamModerated(_moderation_message(status, body), provider=NAME)
        if status == "Error":
            text = body.get("error") or body.get("message") or body.get("details") or "failed"
            raise UpstreamRejected(
                f"Provider returned an error: {clean_message(text)}", provider=NAME
            )
        if status == "Task not found":
            raise UpstreamTaskLost(f"bfl: task {task.task_id} not found", provider=NAME)
        # ``Pending`` and statuses BFL may add later keep polling until the job deadline.
        polls = _count(task.state.get("polls")) + 1
        return Pending(
            progress=_progress(body.get("progress")),
            poll_after=self._backoff(polls),
            state={**task.state, "polls": polls},
        )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _progress(value: Any) -> int | None:
    """BFL reports progress as a 0–1 fraction (some hosts send a percentage)."""
    if not isinstance(value, int | float):
        return None
    percent = value * 100 if value <= 1 else value
    return max(0, min(99, round(percent)))


def _moderation_message(status: str, body: Mapping[str, Any]) -> str:
    where = "the request" if status == "Request Moderated" else "the generated image"
    message = f"Provider returned an error: content policy violation ({where} was moderated)"
    details = body.get("details")
    if isinstance(details, dict) and details:
        reasons = details.get("Moderation Reasons") or details.get("moderation_reasons")
        if reasons:
            reasons_text = (
                ", ".join(str(r) for r in reasons) if isinstance(reasons, list) else reasons
            )
            message += f": {clean_message(reasons_text)}"
    return message


def create_adapter(config: ProviderSettings, context: ProviderContext) -> BflAdapter:
    options = read_options(NAME, Options, config.options)
    region = options.region.lower()
    if region not in REGION_HOSTS:
        raise ValueError(f"bfl: unknown region {region!r} (choose one of {sorted(REGION_HOSTS)})")
    headers = {"x-key": api_key(config), "accept": "application/json"}
    return BflAdapter(
        open_client(NAME, config, context, headers, default_base_url=REGION_HOSTS[region]),
        context.fetch_input,
        aliases=options.models,
        safety_tolerance=options.safety_tolerance,
        inline_inputs=options.inline_inputs,
        poll_interval=options.poll_interval,
    )
