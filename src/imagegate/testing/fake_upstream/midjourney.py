"""A fake midjourney-proxy relay: the ``/mj`` protocol of novicezk/midjourney-proxy (and, with
``buttons=True``, the ``buttons`` / ``/mj/submit/action`` / ``/mj/submit/modal`` extension of the
"plus" relays).

Faithful details: a wrong or missing ``mj-api-secret`` gets an empty 401; validation errors are
HTTP 200 with ``code: 4`` and a Chinese ``description``, like the Java relay; an unknown task
fetch is a 200 with an empty body (the relay serializes ``null``). Tasks move
``SUBMITTED`` → ``IN_PROGRESS`` (``progress: "NN%"``) → ``SUCCESS`` one step per fetch, and the
finished grid is a real 2×2 PNG served at ``/mj/image/{id}`` whose quadrants have distinct colours.

Prompt switches (see ``kit``): at submit ``rate-limit-me`` (what relays behind a rate limiter
send), ``server-error``, ``queue-full``, ``moderate-me``; when the task ends ``fail-me``,
``filter-me``; ``slow`` (three in-progress fetches before success).

``app.state.requests`` records every request (method, path, query, headers, JSON body);
``app.state.tasks`` holds the tasks by id.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from PIL import Image

from imagegate.testing.fake_upstream import kit
from imagegate.testing.fake_upstream.kit import Switch

__all__ = ["QUADRANT_COLOURS", "create_app"]

QUADRANT_COLOURS = ((220, 40, 40), (40, 180, 60), (40, 80, 220), (230, 200, 30))
"""Colours of the grid's images 1–4, so a test can check the split order."""

_RATIO = re.compile(r"--(?:ar|aspect)\s+(\d+):(\d+)")
_HASH = "6b8f0a4c-1d2e-4f3a-9b7c-0e5d8a2f1c34"


_IMAGES = "/mj/image/"
_FAILURES: Mapping[Switch, str] = {
    Switch.FILTER: "Request cancelled due to image filters",
    Switch.FAIL: "[Invalid parameter] Invalid value",
}
"""The ``failReason`` of a task that fails because the prompt asks for it."""


@dataclass(kw_only=True)
class _Task(kit.Task):
    action: str
    index: int = 0
    parent: str | None = None
    status: str = "SUBMITTED"
    fail_reason: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


def _png(size: tuple[int, int], colour: tuple[int, int, int], label: str) -> Image.Image:
    return kit.canvas(size, colour, label, at=(4, 4))


def _images(task: _Task) -> dict[str, bytes]:
    """A finished task's images by file name: the upscale, or the grid and its four tiles."""
    width, height = _tile_size(task.prompt)
    if task.action == "UPSCALE":
        colour = QUADRANT_COLOURS[(task.index or 1) - 1]
        return {f"{task.id}.png": kit.encode(_png((width * 2, height * 2), colour, "U"))}
    grid = Image.new("RGB", (width * 2, height * 2))
    images = {}
    for n, colour in enumerate(QUADRANT_COLOURS):
        tile = _png((width, height), colour, str(n + 1))
        grid.paste(tile, ((n % 2) * width, (n // 2) * height))
        images[f"{task.id}_{n}.png"] = kit.encode(tile)
    return {f"{task.id}.png": kit.encode(grid), **images}


def _tile_size(prompt: str) -> tuple[int, int]:
    match = _RATIO.search(prompt)
    if match is None:
        return 128, 128
    width, height = int(match[1]), int(match[2])
    scale = 128 / max(width, height)
    return max(16, round(width * scale)), max(16, round(height * scale))


def _buttons(task: _Task) -> list[dict[str, Any]]:
    if task.action == "UPSCALE":
        ids = [
            ("Vary (Region)", f"MJ::Inpaint::1::{_HASH}::SOLO"),
            ("Zoom Out 2x", f"MJ::Outpaint::50::1::{_HASH}::SOLO"),
            ("Zoom Out 1.5x", f"MJ::Outpaint::75::1::{_HASH}::SOLO"),
        ] + [
            (f"pan {d}", f"MJ::JOB::pan_{d}::1::{_HASH}::SOLO")
            for d in ("left", "right", "up", "down")
        ]
    else:
        ids = (
            [(f"U{n}", f"MJ::JOB::upsample::{n}::{_HASH}") for n in range(1, 5)]
            + [("", f"MJ::JOB::reroll::0::{_HASH}::SOLO")]
            + [(f"V{n}", f"MJ::JOB::variation::{n}::{_HASH}") for n in range(1, 5)]
        )
    return [
        {"customId": cid, "emoji": "", "label": label, "type": 2, "style": 2} for label, cid in ids
    ]


def create_app(
    *,
    api_secret: str | None = "test-secret",
    buttons: bool = False,
    split_urls: bool = False,
) -> FastAPI:
    """``buttons`` turns on the plus-relay extension; ``split_urls`` adds the four ``imageUrls``."""
    app = FastAPI(title="fake midjourney-proxy")
    ids = (str(n) for n in itertools.count(1_700_000_000_000_001))
    app.state.tasks = tasks = kit.TaskBook(_Task, slow_polls=3, ids=ids)
    shelf = kit.ImageShelf()
    kit.record_requests(
        app,
        authenticate=kit.require_key(
            api_secret, header="mj-api-secret", missing=lambda: Response(status_code=401)
        )
        if api_secret
        else None,
        guarded=lambda path: not path.startswith(_IMAGES),
    )

    def ok(code: int, description: str, result: str | None, **properties: Any) -> JSONResponse:
        return JSONResponse(
            {"code": code, "description": description, "result": result, "properties": properties}
        )

    def new_task(action: str, prompt: str, **kwargs: Any) -> _Task:
        fail_reason = kit.pick(prompt, _FAILURES)
        return tasks.open(prompt, action=action, fail_reason=fail_reason, **kwargs)

    def refusals(prompt: str) -> Mapping[Switch, Callable[[], Response]]:
        return {
            Switch.RATE_LIMIT: lambda: JSONResponse(
                {"code": 429, "description": "请求过于频繁"}, 429, {"Retry-After": "7"}
            ),
            Switch.SERVER_ERROR: lambda: JSONResponse(
                {
                    "timestamp": "2026-01-01T00:00:00.000+00:00",
                    "status": 500,
                    "error": "Internal Server Error",
                    "path": "/mj/submit/imagine",
                },
                500,
            ),
            Switch.QUEUE_FULL: lambda: ok(
                23, "队列已满，请稍后尝试", None, discordInstanceId="1118138338562560102"
            ),
            Switch.MODERATE: lambda: JSONResponse(
                {
                    "code": 24,
                    "description": "可能包含敏感词",
                    "properties": {"promptEn": prompt, "bannedWord": "moderate-me"},
                }
            ),
        }

    def steer(prompt: str) -> Response | None:
        return kit.steer(prompt, refusals(prompt))

    @app.post("/mj/submit/imagine")
    async def imagine(request: Request) -> Response:
        payload = await request.json()
        prompt = str(payload.get("prompt") or "").strip()
        if not prompt:
            return ok(4, "prompt不能为空", None)
        if (steered := steer(prompt)) is not None:
            return steered
        task = new_task("IMAGINE", prompt)
        return ok(1, "提交成功", task.id, discordInstanceId="1118138338562560102")

    def child_of(parent: _Task, action: str, index: int) -> Response:
        if action == "UPSCALE":
            for task in tasks.values():
                if task.parent == parent.id and task.action == action and task.index == index:
                    return ok(21, "任务已存在", task.id, status=task.status)
        task = new_task(action, parent.prompt, index=index, parent=parent.id)
        return ok(1, "提交成功", task.id, discordInstanceId="1118138338562560102")

    def parent_of(payload: dict[str, Any]) -> _Task:
        """The finished task a follow-up names, or the relay's refusal (HTTP 200, code 3/4)."""
        task_id = payload.get("taskId")
        if not task_id:
            raise kit.Refusal(ok(4, "taskId不能为空", None))
        parent = tasks.get(str(task_id))
        if parent is None:
            raise kit.Refusal(ok(3, "关联任务不存在或已失效", None))
        if parent.status != "SUCCESS":
            raise kit.Refusal(ok(4, "关联任务状态错误", None))
        return parent

    @app.post("/mj/submit/change")
    async def change(request: Request) -> Response:
        payload = await request.json()
        parent = parent_of(payload)
        action = payload.get("action")
        if action not in ("UPSCALE", "VARIATION", "REROLL"):
            return ok(4, "action参数错误", None)
        index = payload.get("index")
        if action != "REROLL" and index not in (1, 2, 3, 4):
            return ok(4, "index参数错误", None)
        if parent.action == "UPSCALE":
            return ok(4, "关联任务不允许执行变化", None)
        return child_of(parent, action, int(index or 0))

    if buttons:

        @app.post("/mj/submit/action")
        async def act(request: Request) -> Response:
            payload = await request.json()
            parent = parent_of(payload)
            custom_id = str(payload.get("customId") or "")
            if custom_id not in {b["customId"] for b in _buttons(parent)}:
                return ok(4, "customId参数错误", None)
            parts = custom_id.split("::")
            if parts[1] == "Inpaint":
                task = new_task("VARIATION", parent.prompt, parent=parent.id)
                task.status = "MODAL"
                return ok(21, "等待窗口确认", task.id, status="MODAL")
            if parts[1] == "Outpaint":
                return child_of(parent, "ZOOM", 0)
            kind = parts[2]
            if kind.startswith("pan_"):
                return child_of(parent, "PAN", 0)
            action = {"upsample": "UPSCALE", "variation": "VARIATION", "reroll": "REROLL"}[kind]
            return child_of(parent, action, int(parts[3]))

        @app.post("/mj/submit/modal")
        async def modal(request: Request) -> Response:
            payload = await request.json()
            task = tasks.get(str(payload.get("taskId") or ""))
            if task is None:
                return ok(3, "关联任务不存在或已失效", None)
            if task.status != "MODAL":
                return ok(4, "关联任务状态错误", None)
            if not payload.get("maskBase64"):
                return ok(4, "maskBase64不能为空", None)
            try:
                base64.b64decode(str(payload["maskBase64"]), validate=True)
            except binascii.Error:
                return ok(4, "maskBase64参数错误", None)
            if payload.get("prompt"):
                task.prompt = str(payload["prompt"])
            task.status = "SUBMITTED"
            return ok(1, "提交成功", task.id)

    @app.get("/mj/task/{task_id}/fetch")
    async def fetch(task_id: str, request: Request) -> Response:
        task = tasks.get(task_id)
        if task is None:
            return Response(status_code=200, media_type="application/json")
        if task.status in ("SUBMITTED", "IN_PROGRESS"):
            if not task.poll():
                task.status = "IN_PROGRESS"
            elif task.fail_reason:
                task.status = "FAILURE"
            else:
                task.status = "SUCCESS"
                for name, data in _images(task).items():
                    shelf.put(f"{_IMAGES}{name}", data, "image/png")
        return JSONResponse(_describe(task, kit.base_url(request), buttons, split_urls))

    shelf.serve(app, _IMAGES)
    return app


def _describe(task: _Task, base: str, buttons: bool, split_urls: bool) -> dict[str, Any]:
    progress = {"SUBMITTED": "0%", "MODAL": "0%", "FAILURE": "", "SUCCESS": "100%"}.get(
        task.status, f"{min(95, task.percent)}%"
    )
    body: dict[str, Any] = {
        "id": task.id,
        "action": task.action,
        "status": task.status,
        "prompt": task.prompt,
        "promptEn": task.prompt,
        "description": f"/imagine {task.prompt}",
        "state": None,
        "submitTime": 1_767_225_600_000,
        "startTime": 1_767_225_601_000,
        "finishTime": 1_767_225_660_000 if task.status in ("SUCCESS", "FAILURE") else None,
        "imageUrl": None,
        "progress": progress,
        "failReason": task.fail_reason if task.status == "FAILURE" else None,
        "properties": {"finalPrompt": task.prompt, "discordInstanceId": "1118138338562560102"},
    }
    if task.status == "SUCCESS":
        body["imageUrl"] = f"{base}/mj/image/{task.id}.png"
        if split_urls and task.action != "UPSCALE":
            body["imageUrls"] = [{"url": f"{base}/mj/image/{task.id}_{n}.png"} for n in range(4)]
    if buttons:
        body["buttons"] = _buttons(task) if task.status == "SUCCESS" else []
    return body
