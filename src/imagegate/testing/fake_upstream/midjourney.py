"""A fake midjourney-proxy relay: the ``/mj`` protocol of novicezk/midjourney-proxy (and, with
``buttons=True``, the ``buttons`` / ``/mj/submit/action`` / ``/mj/submit/modal`` extension of the
"plus" relays).

Faithful details: a wrong or missing ``mj-api-secret`` gets an empty 401; validation errors are
HTTP 200 with ``code: 4`` and a Chinese ``description``, like the Java relay; an unknown task
fetch is a 200 with an empty body (the relay serializes ``null``). Tasks move
``SUBMITTED`` → ``IN_PROGRESS`` (``progress: "NN%"``) → ``SUCCESS`` one step per fetch, and the
finished grid is a real 2×2 PNG served at ``/mj/image/{id}`` whose quadrants have distinct colours.

Prompt words steer it: ``moderate-me`` → code 24 (banned word), ``filter-me`` → the task fails
with Midjourney's image-filter reason, ``fail-me`` → the task fails with a plain reason,
``queue-full`` → code 23, ``rate-limit-me`` → 429 with ``Retry-After: 7`` (what relays behind a
rate limiter send), ``server-error`` → 500, ``slow`` → three in-progress fetches before success.

``app.state.requests`` records every request (method, path, headers, JSON body).
"""

from __future__ import annotations

import base64
import binascii
import io
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from PIL import Image, ImageDraw

__all__ = ["QUADRANT_COLOURS", "create_app"]

QUADRANT_COLOURS = ((220, 40, 40), (40, 180, 60), (40, 80, 220), (230, 200, 30))
"""Colours of the grid's images 1–4, so a test can check the split order."""

_RATIO = re.compile(r"--(?:ar|aspect)\s+(\d+):(\d+)")
_HASH = "6b8f0a4c-1d2e-4f3a-9b7c-0e5d8a2f1c34"


@dataclass
class _Task:
    id: str
    action: str
    prompt: str
    polls_needed: int
    index: int = 0
    parent: str | None = None
    status: str = "SUBMITTED"
    fetches: int = 0
    fail_reason: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


def _png(size: tuple[int, int], colour: tuple[int, int, int], label: str) -> Image.Image:
    image = Image.new("RGB", size, colour)
    ImageDraw.Draw(image).text((4, 4), label, fill=(255, 255, 255))
    return image


def _encode(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


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
    tasks: dict[str, _Task] = {}
    requests: list[dict[str, Any]] = []
    ids = itertools.count(1_700_000_000_000_001)
    app.state.requests = requests
    app.state.tasks = tasks

    def ok(code: int, description: str, result: str | None, **properties: Any) -> JSONResponse:
        return JSONResponse(
            {"code": code, "description": description, "result": result, "properties": properties}
        )

    def new_task(action: str, prompt: str, **kwargs: Any) -> _Task:
        polls = 4 if "slow" in prompt else 1
        task = _Task(id=str(next(ids)), action=action, prompt=prompt, polls_needed=polls, **kwargs)
        if "fail-me" in prompt:
            task.fail_reason = "[Invalid parameter] Invalid value"
        if "filter-me" in prompt:
            task.fail_reason = "Request cancelled due to image filters"
        tasks[task.id] = task
        return task

    @app.middleware("http")
    async def record_and_authorize(request: Request, call_next: Any) -> Response:
        body = await request.body()
        entry: dict[str, Any] = {
            "method": request.method,
            "path": request.url.path,
            "headers": dict(request.headers),
            "json": None,
        }
        if body:
            try:
                entry["json"] = json.loads(body)
            except ValueError:
                entry["json"] = None
        requests.append(entry)
        protected = not request.url.path.startswith("/mj/image/")
        if protected and api_secret and request.headers.get("mj-api-secret") != api_secret:
            return Response(status_code=401)
        response: Response = await call_next(request)
        return response

    def steer(prompt: str) -> Response | None:
        if "rate-limit-me" in prompt:
            return JSONResponse(
                {"code": 429, "description": "请求过于频繁"}, 429, {"Retry-After": "7"}
            )
        if "server-error" in prompt:
            return JSONResponse(
                {
                    "timestamp": "2026-01-01T00:00:00.000+00:00",
                    "status": 500,
                    "error": "Internal Server Error",
                    "path": "/mj/submit/imagine",
                },
                500,
            )
        if "queue-full" in prompt:
            return ok(23, "队列已满，请稍后尝试", None, discordInstanceId="1118138338562560102")
        if "moderate-me" in prompt:
            return JSONResponse(
                {
                    "code": 24,
                    "description": "可能包含敏感词",
                    "properties": {"promptEn": prompt, "bannedWord": "moderate-me"},
                }
            )
        return None

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

    def parent_or_error(task_id: Any) -> _Task | Response:
        if not task_id:
            return ok(4, "taskId不能为空", None)
        parent = tasks.get(str(task_id))
        if parent is None:
            return ok(3, "关联任务不存在或已失效", None)
        if parent.status != "SUCCESS":
            return ok(4, "关联任务状态错误", None)
        return parent

    @app.post("/mj/submit/change")
    async def change(request: Request) -> Response:
        payload = await request.json()
        parent = parent_or_error(payload.get("taskId"))
        if not isinstance(parent, _Task):
            return parent
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
            parent = parent_or_error(payload.get("taskId"))
            if not isinstance(parent, _Task):
                return parent
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
            task.fetches += 1
            if task.fetches >= task.polls_needed:
                task.status = "FAILURE" if task.fail_reason else "SUCCESS"
            else:
                task.status = "IN_PROGRESS"
        return JSONResponse(_describe(task, str(request.base_url).rstrip("/"), buttons, split_urls))

    @app.get("/mj/image/{name}")
    async def image(name: str) -> Response:
        task_id, _, part = name.removesuffix(".png").partition("_")
        task = tasks.get(task_id)
        if task is None or task.status != "SUCCESS":
            return Response(status_code=404)
        width, height = _tile_size(task.prompt)
        if task.action == "UPSCALE":
            colour = QUADRANT_COLOURS[(task.index or 1) - 1]
            return Response(
                _encode(_png((width * 2, height * 2), colour, "U")), media_type="image/png"
            )
        if part:
            n = int(part)
            return Response(
                _encode(_png((width, height), QUADRANT_COLOURS[n], str(n + 1))),
                media_type="image/png",
            )
        grid = Image.new("RGB", (width * 2, height * 2))
        for n, colour in enumerate(QUADRANT_COLOURS):
            grid.paste(
                _png((width, height), colour, str(n + 1)), ((n % 2) * width, (n // 2) * height)
            )
        return Response(_encode(grid), media_type="image/png")

    return app


def _describe(task: _Task, base: str, buttons: bool, split_urls: bool) -> dict[str, Any]:
    progress = {"SUBMITTED": "0%", "MODAL": "0%", "FAILURE": "", "SUCCESS": "100%"}.get(
        task.status, f"{min(95, 100 * task.fetches // task.polls_needed)}%"
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
