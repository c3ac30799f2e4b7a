"""Alibaba Cloud Model Studio (DashScope) adapter: Qwen-Image and Wan image models.

DashScope serves image models through three call shapes. Each catalog route declares its shape
(``RouteInputs.shape``, next to the model in the catalog); the ``modes`` option overrides it, and a
model no route declares (the ``edit_model``) takes ``multimodal``:

- ``synthesis`` — the async ``text2image/image-synthesis`` task (``input.prompt``), the only async
  shape ``qwen-image`` / ``qwen-image-plus`` accept. Their ``n`` is fixed at 1, so a job asking
  for several images submits one task per image and polls them together.
- ``generation`` — the async ``image-generation/generation`` task with the messages body
  (``wan2.6-*``, ``wan2.7-image*``); results arrive as ``output.choices``.
- ``multimodal`` — the synchronous ``multimodal-generation/generation`` call (``qwen-image-2.0*``,
  ``qwen-image-max*``, ``qwen-image-edit*``), answered with the images at once.

Async calls carry ``X-DashScope-Async: enable`` and are polled with ``GET /api/v1/tasks/{id}``
(``PENDING``/``RUNNING``/``SUCCEEDED``/``FAILED``/``CANCELED``/``UNKNOWN``). Errors are
``{"request_id", "code", "message"}``; the ``code`` decides the class (``DataInspectionFailed`` and
``IPInfringementSuspect`` are moderation, ``Throttling*`` retryable, ``InvalidApiKey`` and
``AccessDenied*``/``Arrearage`` our configuration, ``InvalidParameter`` a rejection). Result URLs
live 24 hours; the worker downloads them at once. A partly successful task (some images failed
their checks) returns the images that succeeded; a task with none fails with the first reason.

Our params objects map as follows: ``image_size`` (qwen-image) or ``aspect_ratio`` becomes
``size`` as ``W*H`` from the model's documented size list; ``image``/``image_url`` is an input
image (sent as a URL, or as a data URI with ``options["inline_inputs"]``); ``negative_prompt``,
``seed``, ``prompt_extend`` and ``thinking_mode`` pass through. qwen-image's fal-style knobs
(``num_inference_steps``, ``guidance_scale``, ``acceleration``, ``strength``, ``output_format``)
have no DashScope equivalent and are not sent: DashScope always returns PNG.

Options: ``region`` (``intl`` Singapore, default; ``cn`` Beijing; ``us`` Virginia), ``workspace``
(``X-DashScope-WorkSpace``), ``modes`` (model id → shape, overriding the catalog's),
``edit_model`` (the model qwen-image edits run on, default ``qwen-image-edit-plus``),
``watermark`` (default false), ``inline_inputs``, ``poll_interval`` (seconds, default 5: the
longest wait between polls).

Polling follows DashScope's own SDK: the first poll comes 1 s after the submit and every pending
answer doubles the wait, up to ``poll_interval``. The number of polls so far is kept in the task
state, so the cadence survives a worker restart.

An answer we cannot read (not a JSON object, no ``output.task_id`` or ``output.task_status``) is
an error: after a submit it is ``UpstreamRejected`` (DashScope may have accepted and billed the
task or the synchronous call), after a poll ``UpstreamRetryable`` (asked again until the job
deadline). A finished task or synchronous answer without any image is ``UpstreamRejected``.
"""

from __future__ import annotations

import base64
import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import httpx2
from pydantic import Field

from imagegate.errors import (
    UpstreamError,
    UpstreamMisconfigured,
    UpstreamModerated,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamRetryable,
    UpstreamTaskLost,
)
from imagegate.net.retry_after import retry_after_seconds
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
from imagegate.types import InputFetcher, Route

__all__ = ["DashScopeAdapter", "Options", "create_adapter", "mode_for"]

NAME = "dashscope"
FIRST_POLL_SECONDS = 1.0
"""DashScope's SDK polls after 1 s first; waits double from here up to ``poll_interval``."""
REGION_HOSTS = {
    "intl": "https://dashscope-intl.aliyuncs.com",
    "cn": "https://dashscope.aliyuncs.com",
    "us": "https://dashscope-us.aliyuncs.com",
}
SYNTHESIS_PATH = "/api/v1/services/aigc/text2image/image-synthesis"
GENERATION_PATH = "/api/v1/services/aigc/image-generation/generation"
MULTIMODAL_PATH = "/api/v1/services/aigc/multimodal-generation/generation"

Mode = Literal["synthesis", "generation", "multimodal"]
_MODES: tuple[Mode, ...] = ("synthesis", "generation", "multimodal")

_QWEN_SIZES = {  # qwen-image / -plus / -max: the only sizes these accept
    "square": "1328*1328",
    "square_hd": "1328*1328",
    "portrait_4_3": "1104*1472",
    "portrait_16_9": "928*1664",
    "landscape_4_3": "1472*1104",
    "landscape_16_9": "1664*928",
    "1:1": "1328*1328",
    "3:4": "1104*1472",
    "9:16": "928*1664",
    "4:3": "1472*1104",
    "16:9": "1664*928",
}
_QWEN2_SIZES = {  # qwen-image-2.0 recommended sizes; other ratios are computed at the same area
    "16:9": "2688*1536",
    "9:16": "1536*2688",
    "1:1": "2048*2048",
    "4:3": "2368*1728",
    "3:4": "1728*2368",
}
_WAN26_SIZES = {  # wan2.6 recommended sizes (total pixels close to 1280*1280)
    "1:1": "1280*1280",
    "2:3": "800*1200",
    "3:2": "1200*800",
    "3:4": "960*1280",
    "4:3": "1280*960",
    "9:16": "720*1280",
    "16:9": "1280*720",
    "21:9": "1344*576",
}
_MODERATION_CODES = frozenset({"DataInspectionFailed", "IPInfringementSuspect"})
_MISCONFIGURED_CODES = frozenset({"InvalidApiKey", "Arrearage", "AccessDenied.Unpurchased"})


def mode_for(model: str, overrides: Mapping[str, str], route: Route) -> Mode:
    """Which DashScope call shape serves ``model``: the operator's ``modes`` option first, then
    the shape the catalog declares on the route (for the route's own model), else the
    synchronous ``multimodal`` call that every newer model and the edit models take."""
    declared = route.inputs.shape if route.inputs and model == route.upstream_model else None
    for wanted in (overrides.get(model), declared):
        for mode in _MODES:
            if wanted == mode:
                return mode
    return "multimodal"


def _pixels(aspect: str, area: int, low: int, high: int) -> str | None:
    """``W*H`` with the given ratio and (about) the given area, multiples of 16, clamped."""
    left, _, right = aspect.partition(":")
    try:
        width, height = float(left), float(right)
    except ValueError:
        return None
    if width <= 0 or height <= 0:
        return None
    target = max(low, min(high, area))
    scale = math.sqrt(target / (width * height))
    w, h = width * scale, height * scale
    snapped = (round(w / 16) * 16, round(h / 16) * 16)
    if snapped[0] * snapped[1] > high:
        snapped = (math.floor(w / 16) * 16, math.floor(h / 16) * 16)
    elif snapped[0] * snapped[1] < low:
        snapped = (math.ceil(w / 16) * 16, math.ceil(h / 16) * 16)
    return f"{snapped[0]}*{snapped[1]}"


def size_for(upstream_model: str, params: Mapping[str, Any]) -> str | None:
    """DashScope's ``size`` for our params, or ``None`` to let the model choose."""
    requested = params.get("image_size") or params.get("aspect_ratio")
    if not isinstance(requested, str):
        return None
    if upstream_model.startswith(("qwen-image-2", "qwen-image-3")):
        return _QWEN2_SIZES.get(requested) or _pixels(requested, 2048 * 2048, 512**2, 2048**2)
    if upstream_model.startswith("qwen-image"):
        return _QWEN_SIZES.get(requested)
    if upstream_model.startswith("wan2.7"):
        return _pixels(requested, 2048 * 2048, 768**2, 2048**2)
    if upstream_model.startswith("wan2.6"):
        return _WAN26_SIZES.get(requested) or _pixels(requested, 1280 * 1280, 768**2, 1280**2)
    return _pixels(requested, 1280 * 1280, 768**2, 1440**2)


def _error(code: str, message: str, *, status: int | None = None) -> UpstreamError:
    text = clean_message(f"{code}: {message}" if code else message)
    if code in _MODERATION_CODES:
        return UpstreamModerated(
            f"Provider returned an error: content policy violation ({text})", provider=NAME
        )
    if code in _MISCONFIGURED_CODES or code.startswith("AccessDenied"):
        return UpstreamMisconfigured(f"dashscope refused our credentials: {text}", provider=NAME)
    if code.startswith("Throttling"):
        return UpstreamRateLimited(f"dashscope: {text}", provider=NAME)
    if code in ("InternalError", "ServiceUnavailable"):
        return UpstreamRetryable(f"dashscope: {text}", provider=NAME)
    if status is not None and status >= 500:
        return UpstreamRetryable(f"dashscope answered {status}: {text}", provider=NAME)
    return UpstreamRejected(f"Provider returned an error: {text}", provider=NAME)


def _raise_for(response: httpx2.Response) -> None:
    """Map a DashScope error answer by its ``code`` first, then by HTTP status."""
    if response.status_code < 300:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    code = str(body.get("code") or "") if isinstance(body, dict) else ""
    message = str(body.get("message") or "") if isinstance(body, dict) else ""
    if code:
        error = _error(code, message, status=response.status_code)
        if isinstance(error, UpstreamRetryable):
            error.retry_after = retry_after_seconds(response.headers)
        raise error
    raise_for_upstream(response, NAME, message or None)


def _output(body: Any) -> Mapping[str, Any]:
    output = body.get("output") if isinstance(body, dict) else None
    return output if isinstance(output, dict) else {}


def _images(output: Mapping[str, Any]) -> tuple[list[str], list[tuple[str, str]]]:
    """Image URLs and per-image failures from ``results`` or ``choices``."""
    urls: list[str] = []
    failures: list[tuple[str, str]] = []
    for result in output.get("results") or []:
        if not isinstance(result, dict):
            continue
        if result.get("url"):
            urls.append(str(result["url"]))
        elif result.get("code"):
            failures.append((str(result["code"]), str(result.get("message") or "")))
    for choice in output.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        for part in message.get("content") or []:
            if isinstance(part, dict) and part.get("image"):
                urls.append(str(part["image"]))
    return urls, failures


class Options(ProviderOptions):
    region: str = "intl"
    """``intl`` (Singapore), ``cn`` (Beijing) or ``us`` (Virginia)."""
    workspace: str | None = None
    """Sent as ``X-DashScope-WorkSpace``."""
    modes: dict[str, Mode] = Field(default_factory=dict)
    """Upstream model id → call shape, overriding the built-in rules."""
    edit_model: str = "qwen-image-edit-plus"
    """The model ``qwen-image*`` jobs with an input image run on."""
    watermark: bool = False
    inline_inputs: bool = False
    """Send input images as ``data:`` URIs instead of URLs."""
    poll_interval: float = Field(default=5.0, gt=0)
    """The longest wait between polls, in seconds."""


class DashScopeAdapter(Adapter):
    name = NAME
    supports_cancel = True

    def __init__(
        self,
        client: httpx2.AsyncClient,
        fetch_input: InputFetcher,
        *,
        modes: Mapping[str, str],
        edit_model: str = "qwen-image-edit-plus",
        watermark: bool = False,
        inline_inputs: bool = False,
        poll_interval: float = 5.0,
    ) -> None:
        super().__init__(client)
        self._fetch_input = fetch_input
        self._modes = dict(modes)
        self._edit_model = edit_model
        self._watermark = watermark
        self._inline_inputs = inline_inputs
        self._poll_interval = poll_interval

    async def _image_ref(self, url: str) -> str:
        if not self._inline_inputs:
            return url
        fetched = await self._fetch_input(url)
        encoded = base64.b64encode(fetched.data).decode("ascii")
        return f"data:{fetched.content_type};base64,{encoded}"

    def _model(self, request: GenerationRequest) -> str:
        """qwen-image edits run on the edit model: the text-to-image ids take no input image."""
        model = request.route.upstream_model
        params = request.params
        editing = params.get("image_url") and params.get("task_type") != "text-to-image"
        return self._edit_model if model.startswith("qwen-image") and editing else model

    def _parameters(self, model: str, params: Mapping[str, Any], n: int | None) -> dict[str, Any]:
        parameters: dict[str, Any] = {"watermark": self._watermark}
        if n is not None:
            parameters["n"] = n
        if (size := size_for(model, params)) is not None:
            parameters["size"] = size
        for name in ("prompt_extend", "thinking_mode"):
            if isinstance(params.get(name), bool):
                parameters[name] = params[name]
        if isinstance(params.get("seed"), int):
            parameters["seed"] = params["seed"]
        return parameters

    async def _messages_body(self, request: GenerationRequest, model: str) -> dict[str, Any]:
        params = request.params
        content: list[dict[str, str]] = [{"text": request.prompt}]
        image = params.get("image") or params.get("image_url")
        if image:
            content.append({"image": await self._image_ref(str(image))})
        parameters = self._parameters(model, params, request.outputs)
        if model.startswith("wan2.6"):
            # wan2.6 edits (``enable_interleave`` false) need an input image and default to
            # n=4; text-to-image is its interleaved mode, where n is fixed at 1 and
            # ``max_images`` bounds the count.
            parameters["enable_interleave"] = not image
            if not image:
                parameters["n"] = 1
                parameters["max_images"] = request.outputs
        if params.get("negative_prompt"):
            parameters["negative_prompt"] = str(params["negative_prompt"])
        return {
            "model": model,
            "input": {"messages": [{"role": "user", "content": content}]},
            "parameters": parameters,
        }

    def _synthesis_body(self, request: GenerationRequest, model: str) -> dict[str, Any]:
        params = request.params
        input_: dict[str, Any] = {"prompt": request.prompt}
        if params.get("negative_prompt"):
            input_["negative_prompt"] = str(params["negative_prompt"])
        return {"model": model, "input": input_, "parameters": self._parameters(model, params, 1)}

    async def _post(self, path: str, body: Mapping[str, Any], *, async_: bool) -> Any:
        headers = {"X-DashScope-Async": "enable"} if async_ else {}
        try:
            response = await self._client.post(path, json=body, headers=headers)
        except httpx2.TransportError as exc:
            # Both shapes bill once accepted; a lost answer must not become a second charge.
            raise transport_error(exc, NAME, sent=True) from exc
        _raise_for(response)
        return json_object(response, NAME, polling=False)

    async def submit(self, request: GenerationRequest) -> Submitted | Finished:
        model = self._model(request)
        mode = mode_for(model, self._modes, request.route)
        if mode == "multimodal":
            body = await self._post(
                MULTIMODAL_PATH, await self._messages_body(request, model), async_=False
            )
            return self._finished(request, model, _output(body))
        if mode == "generation":
            answers = [
                await self._post(
                    GENERATION_PATH, await self._messages_body(request, model), async_=True
                )
            ]
        else:
            answers = await self._fan_out(request, self._synthesis_body(request, model))
        task_ids = [str(_output(answer).get("task_id") or "") for answer in answers]
        if not all(task_ids):
            raise malformed(NAME, "no task_id", polling=False)
        return Submitted(
            task_ids[0],
            {"task_ids": task_ids, "model": model},
            poll_after=self._backoff(0),
        )

    async def _fan_out(self, request: GenerationRequest, body: Mapping[str, Any]) -> list[Any]:
        """One synthesis task per image; if a later submit fails, cancel the ones accepted."""
        answers: list[Any] = []
        try:
            for _ in range(max(1, request.outputs)):
                answers.append(await self._post(SYNTHESIS_PATH, body, async_=True))
        except UpstreamError:
            accepted = [str(_output(answer).get("task_id")) for answer in answers]
            if accepted:
                handle = TaskHandle(accepted[0], {"task_ids": accepted})
                with contextlib.suppress(UpstreamError):  # the first failure is what counts
                    await self.cancel(request, handle)
            raise
        return answers

    async def _task(self, task_id: str) -> Mapping[str, Any]:
        try:
            response = await self._client.get(f"/api/v1/tasks/{task_id}")
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=False) from exc
        if response.status_code == 404:
            raise UpstreamTaskLost(f"dashscope: task {task_id} not found", provider=NAME)
        _raise_for(response)
        output = _output(json_object(response, NAME, polling=True))
        if not isinstance(output.get("task_status"), str):
            raise malformed(NAME, "no task_status", polling=True)
        return output

    async def poll(self, request: GenerationRequest, task: TaskHandle) -> Pending | Finished:
        task_ids: Sequence[str] = task.state.get("task_ids") or [task.task_id]
        outputs = [await self._task(task_id) for task_id in task_ids]
        done = 0
        for task_id, output in zip(task_ids, outputs, strict=True):
            status = str(output.get("task_status"))
            if status == "SUCCEEDED":
                done += 1
            elif status == "FAILED":
                raise _error(str(output.get("code") or ""), str(output.get("message") or "failed"))
            elif status == "CANCELED":
                raise UpstreamError(f"dashscope: task {task_id} was canceled", provider=NAME)
            elif status == "UNKNOWN":
                raise UpstreamTaskLost(
                    f"dashscope: task {task_id} is unknown or expired", provider=NAME
                )
        if done < len(task_ids):
            polls = _count(task.state.get("polls")) + 1
            return Pending(
                progress=_progress(outputs, done),
                poll_after=self._backoff(polls),
                state={**task.state, "polls": polls},
            )
        merged: dict[str, Any] = {"results": [], "choices": []}
        for output in outputs:
            merged["results"] += output.get("results") or []
            merged["choices"] += output.get("choices") or []
        model = str(task.state.get("model") or request.route.upstream_model)
        return self._finished(request, model, merged)

    def _finished(
        self, request: GenerationRequest, model: str, output: Mapping[str, Any]
    ) -> Finished:
        urls, failures = _images(output)
        if failures and not urls:
            raise _error(*failures[0])
        if not urls:
            raise UpstreamRejected("dashscope: the task finished without images", provider=NAME)
        return Finished(
            images=[OutputImage(url=url, content_type="image/png") for url in urls],
            served_model=model,
        )

    def _backoff(self, polls: int) -> float:
        """The wait before the next poll after ``polls`` pending answers."""
        return min(self._poll_interval, FIRST_POLL_SECONDS * (1 << min(polls, 16)))

    async def cancel(self, request: GenerationRequest, task: TaskHandle) -> None:
        """Cancel every task still ``PENDING``; running tasks cannot be cancelled (400)."""
        for task_id in task.state.get("task_ids") or [task.task_id]:
            try:
                response = await self._client.post(f"/api/v1/tasks/{task_id}/cancel")
            except httpx2.TransportError as exc:
                raise transport_error(exc, NAME, sent=False) from exc
            if response.status_code == 400:
                continue  # UnsupportedOperation: already running or finished
            _raise_for(response)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _progress(outputs: Sequence[Mapping[str, Any]], done: int) -> int | None:
    """DashScope reports no percentage; ``task_metrics`` and finished sub-tasks give one."""
    if len(outputs) > 1:
        return min(99, round(100 * done / len(outputs)))
    total = finished = 0
    for output in outputs:
        metrics = output.get("task_metrics")
        if isinstance(metrics, dict) and metrics.get("TOTAL"):
            total += int(metrics["TOTAL"])
            finished += int(metrics.get("SUCCEEDED", 0)) + int(metrics.get("FAILED", 0))
    return min(99, round(100 * finished / total)) if total else None


def create_adapter(config: ProviderSettings, context: ProviderContext) -> DashScopeAdapter:
    options = read_options(NAME, Options, config.options)
    region = options.region.lower()
    if region not in REGION_HOSTS:
        raise ValueError(
            f"dashscope: unknown region {region!r} (choose one of {sorted(REGION_HOSTS)})"
        )
    headers = {"Authorization": f"Bearer {api_key(config)}", "Accept": "application/json"}
    if options.workspace:
        headers["X-DashScope-WorkSpace"] = options.workspace
    return DashScopeAdapter(
        open_client(NAME, config, context, headers, default_base_url=REGION_HOSTS[region]),
        context.fetch_input,
        modes=options.modes,
        edit_model=options.edit_model,
        watermark=options.watermark,
        inline_inputs=options.inline_inputs,
        poll_interval=options.poll_interval,
    )
