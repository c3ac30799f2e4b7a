"""Midjourney through a relay that speaks the open-source midjourney-proxy protocol.

Midjourney has no public API; relays automate Discord sessions and expose ``/mj/…`` endpoints
(auth header ``mj-api-secret``). A generation is ``POST /mj/submit/imagine`` → poll
``GET /mj/task/{id}/fetch`` until ``SUCCESS`` or ``FAILURE``. Submit answers carry a ``code``:
1 ok, 21 exists, 22 queued (all give a task id), 23 queue full (retry later), 24 banned prompt
(moderated), anything else is a refusal described by ``description``.

Our ``midjourneyParams`` become Midjourney flags appended to the prompt (``aspect_ratio`` →
``--ar``, ``version`` → ``--v`` …); a flag the user already wrote in the prompt wins.

Follow-up actions (``request.action``) do not rely on state persisted from the parent poll:
``Finished`` has no state, so instead the adapter fetches the parent task again at action time
and reads its ``buttons``. Relays of the "plus" family list buttons and take
``POST /mj/submit/action {taskId, customId}`` (inpaint then needs ``POST /mj/submit/modal`` with
the mask); the open-source relay has no buttons and only knows upsample / variation / reroll via
``POST /mj/submit/change``.

A finished grid task yields four images: the relay's split ``imageUrls`` when it has them, else
the grid ``imageUrl`` downloaded and cut into quadrants here. Upsamples yield one image.

An answer we cannot read is an error: after a submit (no JSON object with a numeric ``code``) it is
``UpstreamRejected`` (the relay may have queued, and Midjourney billed, the job), after a fetch
``UpstreamRetryable`` (asked again until the job deadline) — except an empty or ``null`` fetch,
which is how the relay says it does not know the task: ``UpstreamTaskLost``.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx2
from PIL import Image

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

__all__ = ["MidjourneyAdapter", "Options", "build_prompt", "create_adapter", "split_grid"]

NAME = "midjourney"
AUTH_HEADER = "mj-api-secret"
_POLL_SECONDS = 4.0
"""Relays advise polling every 2–5 s; a Midjourney job takes most of a minute, so 4 s is enough
for progress to move between polls without hammering the relay (queued or running alike)."""

_FLAGS: Sequence[tuple[str, str]] = (
    ("aspect_ratio", "--ar"),
    ("version", "--v"),
    ("niji", "--niji"),
    ("stylize", "--stylize"),
    ("chaos", "--chaos"),
    ("quality", "--quality"),
    ("weird", "--weird"),
    ("seed", "--seed"),
    ("stop", "--stop"),
    ("style", "--style"),
    ("no", "--no"),
)
"""Param → flag, in the order Midjourney users conventionally write them."""
_FLAG_ALIASES = {
    "--ar": ("--ar", "--aspect"),
    "--v": ("--v", "--version"),
    "--stylize": ("--stylize", "--s"),
    "--chaos": ("--chaos", "--c"),
    "--quality": ("--quality", "--q"),
    "--weird": ("--weird", "--w"),
}
_SWITCHES: Sequence[tuple[str, str]] = (("tile", "--tile"), ("raw", "--raw"))
_SPEEDS = frozenset({"fast", "relax", "turbo"})

_OK_CODES = frozenset({1, 21, 22})
_QUEUE_FULL = 23
_BANNED = 24
_NOT_FOUND = 3

_MODERATION_WORDS = re.compile(
    r"banned|sensitive|moderat|image filters|community guidelines|blocked|nsfw",
    re.IGNORECASE,
)
_PROGRESS = re.compile(r"(\d{1,3})")

_CHANGE_ACTIONS = {"upsample": "UPSCALE", "variation": "VARIATION", "reroll": "REROLL"}
_GRID_ACTIONS = frozenset({"IMAGINE", "VARIATION", "REROLL", "PAN", "OUTPAINT", "INPAINT", "ZOOM"})


def _has_flag(prompt: str, flag: str) -> bool:
    names = _FLAG_ALIASES.get(flag, (flag,))
    return any(re.search(rf"(?:^|\s){re.escape(name)}(?:\s|$)", prompt) for name in names)


def build_prompt(prompt: str, params: Mapping[str, Any], speed: str | None = None) -> str:
    """The prompt with our params appended as Midjourney flags (flags already present win)."""
    parts = [prompt.strip()]
    for key, flag in _FLAGS:
        value = params.get(key)
        if value is None or value == "" or _has_flag(prompt, flag):
            continue
        parts.append(f"{flag} {value}")
    for key, flag in _SWITCHES:
        if params.get(key) is True and not _has_flag(prompt, flag):
            parts.append(flag)
    if speed in _SPEEDS and not _has_flag(prompt, f"--{speed}"):
        parts.append(f"--{speed}")
    return " ".join(parts)


def split_grid(grid: bytes) -> list[bytes]:
    """Cut Midjourney's 2×2 grid into its four PNG images, in reading order (1–4)."""
    with Image.open(io.BytesIO(grid)) as image:
        image.load()
        width, height = image.size
        half_w, half_h = width // 2, height // 2
        tiles: list[bytes] = []
        for top in (0, half_h):
            for left in (0, half_w):
                tile = image.crop((left, top, left + half_w, top + half_h))
                buffer = io.BytesIO()
                tile.save(buffer, format="PNG")
                tiles.append(buffer.getvalue())
    return tiles


def _button_id(buttons: Sequence[Mapping[str, Any]], action: Mapping[str, Any]) -> str | None:
    """The ``customId`` of the parent's button for ``action``, if the relay listed one."""
    kind = action.get("type")
    index = int(action.get("index") or 1)
    wanted: list[str]
    if kind == "upsample":
        wanted = [f"MJ::JOB::upsample::{index}::"]
    elif kind == "variation":
        wanted = [f"MJ::JOB::variation::{index}::", f"MJ::JOB::low_variation::{index}::"]
    elif kind == "reroll":
        wanted = ["MJ::JOB::reroll::"]
    elif kind == "inpaint":
        wanted = ["MJ::Inpaint::"]
    elif kind == "outpaint":
        # Midjourney's "Zoom Out 2x" is stored as 50 (percent of the new frame), 1.5x as 75.
        zoom = float(action.get("zoom_ratio") or 2)
        wanted = [f"MJ::Outpaint::{50 if zoom >= 2 else 75}::"]
    elif kind == "pan":
        wanted = [f"MJ::JOB::pan_{action.get('direction')}::"]
    else:
        return None
    for button in buttons:
        custom_id = str(button.get("customId") or "")
        if any(custom_id.startswith(prefix) for prefix in wanted):
            return custom_id
    return None


def _strip_data_url(mask: str) -> str:
    return mask.split(",", 1)[1] if mask.startswith("data:") else mask


class Options(ProviderOptions):
    speed: Literal["fast", "relax", "turbo"] | None = None
    """Appended as ``--fast`` etc. to every prompt that does not already carry it."""


class MidjourneyAdapter(Adapter):
    name = NAME

    def __init__(self, client: httpx2.AsyncClient, *, speed: str | None = None) -> None:
        super().__init__(client)
        self._speed = speed

    async def submit(self, request: GenerationRequest) -> Submitted | Finished:
        if request.action:
            return await self._submit_action(request)
        body = {"prompt": build_prompt(request.prompt, request.params, self._speed)}
        answer = await self._post("/mj/submit/imagine", body)
        return self._submitted(answer, "IMAGINE")

    async def _submit_action(self, request: GenerationRequest) -> Submitted:
        action = request.action
        kind = str(action.get("type"))
        parent_id = str(action.get("parent_task_id") or "")
        if not parent_id:
            raise UpstreamRejected("midjourney: an action needs the parent task id", provider=NAME)
        parent = await self._fetch(parent_id)
        if parent is None:
            raise UpstreamTaskLost(f"midjourney: parent task {parent_id} not found", provider=NAME)
        buttons = parent.get("buttons") or []
        custom_id = _button_id(buttons, action)
        if custom_id is not None:
            answer = await self._post(
                "/mj/submit/action", {"taskId": parent_id, "customId": custom_id}
            )
            if kind == "inpaint" or _properties(answer).get("status") == "MODAL":
                answer = await self._submit_modal(answer, request)
            return self._submitted(answer, kind.upper())
        if kind in _CHANGE_ACTIONS and not buttons:
            body = {
                "taskId": parent_id,
                "action": _CHANGE_ACTIONS[kind],
                "index": int(action.get("index") or 1),
            }
            return self._submitted(await self._post("/mj/submit/change", body), kind.upper())
        raise UpstreamRejected(
            f"midjourney: the relay offers no {kind} action for task {parent_id}", provider=NAME
        )

    async def _submit_modal(
        self, answer: Mapping[str, Any], request: GenerationRequest
    ) -> Mapping[str, Any]:
        self._check_code(answer)
        body: dict[str, Any] = {"taskId": str(answer.get("result"))}
        mask = request.action.get("mask")
        if isinstance(mask, str) and mask:
            body["maskBase64"] = _strip_data_url(mask)
        prompt = request.action.get("prompt") or request.prompt
        if prompt:
            body["prompt"] = build_prompt(str(prompt), request.params, self._speed)
        return await self._post("/mj/submit/modal", body)

    async def _post(self, path: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        try:
            response = await post_json(self._client, path, dict(body))
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=True) from exc
        raise_for_upstream(response, NAME, _error_text(response))
        answer = _json(response)
        if not isinstance(answer, Mapping) or not isinstance(answer.get("code"), int):
            raise malformed(NAME, "a body that is not a submit result", polling=False)
        return answer

    def _check_code(self, answer: Mapping[str, Any]) -> None:
        code = answer.get("code")
        description = clean_message(answer.get("description") or f"code {code}")
        if code in _OK_CODES:
            return
        if code == _BANNED:
            banned = _properties(answer).get("bannedWord")
            suffix = f" (banned word: {clean_message(banned)})" if banned else ""
            raise UpstreamModerated(
                f"Provider returned an error: content policy violation{suffix}", provider=NAME
            )
        if code == _QUEUE_FULL:
            raise UpstreamRetryable(f"midjourney: {description}", provider=NAME, retry_after=30)
        if code == _NOT_FOUND:
            raise UpstreamTaskLost(f"midjourney: {description}", provider=NAME)
        raise UpstreamRejected(f"Provider returned an error: {description}", provider=NAME)

    def _submitted(self, answer: Mapping[str, Any], action: str) -> Submitted:
        self._check_code(answer)
        task_id = answer.get("result")
        if not task_id:
            raise UpstreamRejected("midjourney: the relay gave no task id", provider=NAME)
        return Submitted(str(task_id), {"action": action}, poll_after=_POLL_SECONDS)

    async def _fetch(self, task_id: str) -> Mapping[str, Any] | None:
        try:
            response = await self._client.get(f"/mj/task/{task_id}/fetch")
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=False) from exc
        if response.status_code == 404 or not response.content.strip():
            return None  # the relay serializes an unknown task as ``null``: an empty 200
        raise_for_upstream(response, NAME, _error_text(response))
        try:
            task = response.json()
        except ValueError:
            task = ""
        if task is None:
            return None
        if not isinstance(task, Mapping) or not task.get("id") or "status" not in task:
            raise malformed(NAME, "a body that is not a task", polling=True)
        return task

    async def poll(self, request: GenerationRequest, task: TaskHandle) -> Pending | Finished:
        current = await self._fetch(task.task_id)
        if current is None:
            raise UpstreamTaskLost(f"midjourney: task {task.task_id} not found", provider=NAME)
        status = str(current.get("status") or "")
        if status == "SUCCESS":
            return await self._finished(current)
        if status in ("FAILURE", "CANCEL"):
            reason = clean_message(current.get("failReason") or status.lower())
            if _MODERATION_WORDS.search(reason):
                raise UpstreamModerated(
                    f"Provider returned an error: content policy violation ({reason})",
                    provider=NAME,
                )
            raise UpstreamRejected(f"Provider returned an error: {reason}", provider=NAME)
        progress = _PROGRESS.search(str(current.get("progress") or ""))
        percent = min(99, int(progress[1])) if progress and status == "IN_PROGRESS" else 0
        return Pending(progress=percent, poll_after=_POLL_SECONDS)

    async def _finished(self, current: Mapping[str, Any]) -> Finished:
        action = str(current.get("action") or "IMAGINE").upper()
        image_url = current.get("imageUrl")
        if not isinstance(image_url, str) or not image_url:
            raise UpstreamRejected("midjourney: the task succeeded without an image", provider=NAME)
        if action not in _GRID_ACTIONS:
            return Finished(images=[OutputImage(url=image_url)], served_model=NAME)
        grid_data, content_type = await self._download(image_url)
        grid = OutputImage(data=grid_data, content_type=content_type)
        split_urls = current.get("imageUrls")
        if isinstance(split_urls, list) and len(split_urls) == 4:
            images = [OutputImage(url=str(_url_of(item))) for item in split_urls]
        else:
            tiles = await asyncio.to_thread(split_grid, grid_data)  # 0.1-0.6 s of CPU: off the loop
            images = [OutputImage(data=tile, content_type="image/png") for tile in tiles]
        return Finished(images=images, grid=grid, served_model=NAME)

    async def _download(self, url: str) -> tuple[bytes, str]:
        """Fetch the grid; the relay secret goes only to the relay's own host, never a CDN."""
        request = self._client.build_request("GET", url)
        if urlsplit(url).netloc and request.url.host != self._client.base_url.host:
            request.headers.pop(AUTH_HEADER, None)
        try:
            response = await self._client.send(request)
        except httpx2.TransportError as exc:
            raise transport_error(exc, NAME, sent=False) from exc
        raise_for_upstream(response, NAME, "could not download the grid image")
        content_type = response.headers.get("content-type", "image/png").split(";")[0]
        return response.content, content_type


def _url_of(item: Any) -> Any:
    return item.get("url") if isinstance(item, Mapping) else item


def _properties(answer: Mapping[str, Any]) -> Mapping[str, Any]:
    properties = answer.get("properties")
    return properties if isinstance(properties, Mapping) else {}


def _json(response: httpx2.Response) -> Any:
    if not response.content.strip():
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _error_text(response: httpx2.Response) -> str | None:
    if response.status_code < 300:
        return None
    body = _json(response)
    if isinstance(body, Mapping):
        for key in ("description", "message", "error", "detail"):
            if body.get(key):
                return clean_message(body[key])
    return clean_message(response.text) if response.text.strip() else None


def create_adapter(config: ProviderSettings, context: ProviderContext) -> MidjourneyAdapter:
    """The relay has no official host: ``base_url`` is required."""
    options = read_options(NAME, Options, config.options)
    headers = {AUTH_HEADER: key} if (key := api_key(config)) else {}
    if not config.base_url:
        raise ValueError("midjourney: set the relay's base_url (there is no official API)")
    config = config.model_copy(update={"base_url": config.base_url.rstrip("/")})
    return MidjourneyAdapter(
        open_client(NAME, config, context, headers, default_base_url=None), speed=options.speed
    )
