"""A fake DashScope (Alibaba Cloud Model Studio) API for Qwen-Image and Wan image models.

Endpoints, as documented: ``POST /api/v1/services/aigc/text2image/image-synthesis`` (async,
``input.prompt``; ``qwen-image``/``qwen-image-plus`` with ``n`` fixed at 1),
``POST /api/v1/services/aigc/image-generation/generation`` (async, messages body; ``wan2.6-*``,
``wan2.7-*``), ``POST /api/v1/services/aigc/multimodal-generation/generation`` (synchronous,
messages body), ``GET /api/v1/tasks/{task_id}`` and ``POST /api/v1/tasks/{task_id}/cancel``.
Async endpoints refuse calls without ``X-DashScope-Async: enable`` (403 ``AccessDenied``, "current
user api does not support synchronous calls"). Every error is ``{"request_id", "code",
"message"}``; a wrong or missing ``Authorization: Bearer`` key is 401 ``InvalidApiKey``. Result
images are PNGs rendered with Pillow and served by the fake under signed-looking OSS URLs.

Prompt switches (see ``kit``): at submit ``rate-limit-me``, ``server-error``, ``moderate-me``;
when the task (or sync call) ends ``moderate-output``, ``fail-me``; ``slow`` (the task stays
``PENDING`` then ``RUNNING`` for a few polls; later tasks of the same prompt queue one poll
longer, like DashScope's per-user queue).

Options: ``api_key`` (default ``sk-test``), ``retry_after`` (default 3), ``max_side`` (default 256).
``app.state.requests`` records every request received; ``app.state.tasks`` holds the tasks.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from imagegate.providers.sandbox import render
from imagegate.testing.fake_upstream import kit
from imagegate.testing.fake_upstream.kit import Switch

__all__ = ["create_app"]

SYNTHESIS_MODELS = frozenset({"qwen-image", "qwen-image-plus", "qwen-image-plus-2026-01-09"})
QWEN_SIZES = ("1664*928", "1472*1104", "1328*1328", "1104*1472", "928*1664")
_WH = re.compile(r"^(\d+)\*(\d+)$")
_TIERS = {"1K": 1024, "2K": 2048, "4K": 4096}


def _error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    body = {"request_id": str(uuid.uuid4()), "code": code, "message": message}
    return JSONResponse(body, status_code=status, headers=headers or None)


class _Invalid(Exception):
    def __init__(self, message: str, code: str = "InvalidParameter") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _size(model: str, size: Any) -> tuple[int, int]:
    """Validate ``size`` like the model does; answer the pixel size to render."""
    if size is None:
        if model.startswith("qwen-image-2"):
            return 2048, 2048
        if model.startswith("qwen-image"):
            return 1664, 928
        return 2048, 2048
    if not isinstance(size, str):
        raise _Invalid("size must be a string")
    fixed_sizes = model.startswith(("qwen-image-plus", "qwen-image-max")) or model == "qwen-image"
    if fixed_sizes and size not in QWEN_SIZES:
        raise _Invalid(f"The size is not match the allowed size {list(QWEN_SIZES)}")
    if size in _TIERS:
        if not model.startswith("wan2.") or (size == "4K" and model != "wan2.7-image-pro"):
            raise _Invalid(f"size {size} is not supported by {model}")
        return _TIERS[size], _TIERS[size]
    match = _WH.match(size)
    if match is None:
        raise _Invalid("size must be formatted as width*height, e.g. 1024*1024")
    width, height = int(match[1]), int(match[2])
    low, high = (512**2, 2048**2) if model.startswith("qwen-image-2") else (768**2, 2048**2)
    if model.startswith("qwen-image") and not model.startswith("qwen-image-2"):
        low = 0
    if model.startswith("wan2.7-image-pro"):
        high = 4096**2
    if not low <= width * height <= high or not 1 / 8 <= width / height <= 8:
        raise _Invalid(f"size {size} is out of range for {model}")
    return width, height


def _max_n(model: str) -> int:
    if model.startswith("qwen-image-2"):
        return 6
    if model.startswith("wan2."):
        return 4
    return 1


def _wan26(parameters: dict[str, Any], images: list[str]) -> tuple[tuple[int, int], int]:
    """wan2.6's two modes: edit (1–4 images, n 1–4, default 4) or interleaved (n fixed at 1,
    ``max_images`` 1–5, at most one image, at most 1280*1280 pixels)."""
    size = parameters.get("size")
    if parameters.get("enable_interleave", False):
        if len(images) > 1:
            raise _Invalid("at most one image is supported when enable_interleave is true")
        if parameters.get("n", 1) != 1:
            raise _Invalid("n must be 1 when enable_interleave is true")
        count = parameters.get("max_images", 5)
        if not isinstance(count, int) or not 1 <= count <= 5:
            raise _Invalid("max_images must be between 1 and 5")
        width, height = _size("wan2.6", size) if size else (1280, 1280)
        if width * height > 1280 * 1280:
            raise _Invalid(f"size {size} is out of range when enable_interleave is true")
        return (width, height), count
    if not 1 <= len(images) <= 4:
        raise _Invalid("1 to 4 images are required when enable_interleave is false")
    count = parameters.get("n", 4)
    if not isinstance(count, int) or not 1 <= count <= 4:
        raise _Invalid("n must be between 1 and 4")
    return (_size("wan2.6", size) if size else (1280, 1280)), count


def _parse_messages(body: dict[str, Any]) -> tuple[str, list[str]]:
    messages = (body.get("input") or {}).get("messages")
    if not isinstance(messages, list) or len(messages) != 1:
        raise _Invalid("input.messages must contain exactly one message")
    message = messages[0]
    if message.get("role") != "user" or not isinstance(message.get("content"), list):
        raise _Invalid("input.messages[0] must be a user message with a content array")
    texts = [part["text"] for part in message["content"] if "text" in part]
    images = [part["image"] for part in message["content"] if "image" in part]
    if len(texts) != 1:
        raise _Invalid("exactly one text item is required in content")
    return str(texts[0]), [str(image) for image in images]


@dataclass(kw_only=True)
class _Task(kit.Task):
    model: str
    size: tuple[int, int]
    n: int
    kind: str
    """``results`` (image-synthesis) or ``choices`` (image-generation): the answer's shape."""
    status: str = "PENDING"
    failure: tuple[str, str] | None = None


_OUTCOMES: Mapping[Switch, tuple[str, str]] = {
    Switch.MODERATE_OUTPUT: (
        "DataInspectionFailed",
        "Output data may contain inappropriate content.",
    ),
    Switch.FAIL: ("InternalError.Algo", "Algorithm process error."),
}
"""How a task (or sync call) fails when the prompt asks for it: code and message."""
_RESULTS = "/dashscope-result/"
_DENIED = "<Error><Code>AccessDenied</Code></Error>"


def create_app(**options: Any) -> FastAPI:
    api_key = str(options.get("api_key", "sk-test"))
    retry_after = str(options.get("retry_after", 3))
    max_side = int(options.get("max_side", 256))

    app = FastAPI(title="fake DashScope API")
    app.state.tasks = tasks = kit.TaskBook(_Task, slow_polls=2)
    app.state.queue = {}
    shelf = kit.ImageShelf()

    authenticate = kit.require_key(
        f"Bearer {api_key}",
        missing=lambda: _error(401, "InvalidApiKey", "No API-key provided."),
        wrong=lambda _: _error(401, "InvalidApiKey", "Invalid API-key provided."),
    )
    kit.record_requests(
        app, authenticate=authenticate, guarded=lambda path: path.startswith("/api/")
    )
    refusals: Mapping[Switch, Callable[[], Response]] = {
        Switch.RATE_LIMIT: lambda: _error(
            429,
            "Throttling.RateQuota",
            "Requests rate limit exceeded, please try again later.",
            **{"Retry-After": retry_after},
        ),
        Switch.SERVER_ERROR: lambda: _error(
            500,
            "InternalError",
            "An internal error has occured, please try again later or contact service support.",
        ),
        Switch.MODERATE: lambda: _error(
            400, "DataInspectionFailed", "Input data may contain inappropriate content."
        ),
    }

    def steer(prompt: str) -> Response | None:
        return kit.steer(prompt, refusals)

    def outcome(prompt: str) -> tuple[str, str] | None:
        return kit.pick(prompt, _OUTCOMES)

    def shelve(key: str, prompt: str, size: tuple[int, int], n: int) -> None:
        for index in range(n):
            data = render(prompt, 0, index, kit.shrunk(size, max_side), "PNG")
            shelf.put(f"{_RESULTS}{key}/{index}.png", data, "image/png")

    def image_urls(request: Request, key: str, count: int) -> list[str]:
        return [
            shelf.url(request, f"{_RESULTS}{key}/{n}.png?Expires=1767312000&Signature=fake%3D")
            for n in range(count)
        ]

    def create_task(
        model: str, prompt: str, size: tuple[int, int], n: int, kind: str
    ) -> dict[str, Any]:
        queued = app.state.queue.get(prompt, 0)
        app.state.queue[prompt] = queued + 1
        task = tasks.open(prompt, slow_polls=2 + queued, model=model, size=size, n=n, kind=kind)
        return {
            "request_id": str(uuid.uuid4()),
            "output": {"task_id": task.id, "task_status": "PENDING"},
        }

    def require_async(request: Request) -> Response | None:
        if request.headers.get("x-dashscope-async") != "enable":
            return _error(
                403, "AccessDenied", "current user api does not support synchronous calls"
            )
        return None

    @app.post("/api/v1/services/aigc/text2image/image-synthesis")
    async def synthesis(request: Request) -> Response:
        if (refused := require_async(request)) is not None:
            return refused
        body = await request.json()
        model = str(body.get("model") or "")
        if model not in SYNTHESIS_MODELS:
            return _error(400, "InvalidParameter", f"Model not exist: {model}")
        prompt = (body.get("input") or {}).get("prompt")
        if not isinstance(prompt, str) or not prompt:
            return _error(400, "InvalidParameter", "Field required: input.prompt")
        if (steered := steer(prompt)) is not None:
            return steered
        parameters = body.get("parameters") or {}
        if parameters.get("n", 1) != 1:
            return _error(400, "InvalidParameter", "num_images_per_prompt must be 1")
        try:
            size = _size(model, parameters.get("size"))
        except _Invalid as exc:
            return _error(400, exc.code, exc.message)
        return JSONResponse(create_task(model, prompt, size, 1, "results"))

    def messages_request(body: dict[str, Any]) -> tuple[str, str, tuple[int, int], int]:
        model = str(body.get("model") or "")
        if not model:
            raise _Invalid("Field required: model")
        prompt, images = _parse_messages(body)
        parameters = body.get("parameters") or {}
        if model.startswith("wan2.6"):
            return model, prompt, *_wan26(parameters, images)
        n = parameters.get("n", 1)
        if not isinstance(n, int) or not 1 <= n <= _max_n(model):
            raise _Invalid(f"n must be between 1 and {_max_n(model)} for {model}")
        return model, prompt, _size(model, parameters.get("size")), n

    @app.post("/api/v1/services/aigc/image-generation/generation")
    async def generation(request: Request) -> Response:
        if (refused := require_async(request)) is not None:
            return refused
        try:
            model, prompt, size, n = messages_request(await request.json())
        except _Invalid as exc:
            return _error(400, exc.code, exc.message)
        if not model.startswith("wan2."):
            return _error(400, "InvalidParameter", f"Model not exist: {model}")
        if (steered := steer(prompt)) is not None:
            return steered
        return JSONResponse(create_task(model, prompt, size, n, "choices"))

    @app.post("/api/v1/services/aigc/multimodal-generation/generation")
    async def multimodal(request: Request) -> Response:
        try:
            _model, prompt, size, n = messages_request(await request.json())
        except _Invalid as exc:
            return _error(400, exc.code, exc.message)
        if (steered := steer(prompt)) is not None:
            return steered
        if (failed := outcome(prompt)) is not None:
            return _error(400, *failed)
        key = str(uuid.uuid4())
        shelve(key, prompt, size, n)
        content = [{"image": url} for url in image_urls(request, key, n)]
        return JSONResponse(
            {
                "request_id": str(uuid.uuid4()),
                "output": {
                    "choices": [
                        {
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": content},
                        }
                    ]
                },
                "usage": {"image_count": n, "width": size[0], "height": size[1]},
            }
        )

    @app.get("/api/v1/tasks/{task_id}")
    async def get_task(task_id: str, request: Request) -> Response:
        task = tasks.get(task_id)
        request_id = str(uuid.uuid4())
        if task is None:
            return JSONResponse(
                {"request_id": request_id, "output": {"task_id": task_id, "task_status": "UNKNOWN"}}
            )
        output: dict[str, Any] = {
            "task_id": task_id,
            "submit_time": "2026-01-01 00:00:00.000",
            "scheduled_time": "2026-01-01 00:00:00.100",
        }
        if task.status in ("PENDING", "RUNNING"):
            task.poll()
            if not task.finished:
                task.status = "PENDING" if task.polls == 1 else "RUNNING"
                output["task_status"] = task.status
                if task.kind == "choices" and task.status == "RUNNING":
                    done = min(task.n - 1, (task.polls - 1) * task.n // (task.polls_needed - 1))
                    output["task_metrics"] = {"TOTAL": task.n, "SUCCEEDED": done, "FAILED": 0}
                return JSONResponse({"request_id": request_id, "output": output})
            task.failure = outcome(task.prompt)
            task.status = "FAILED" if task.failure else "SUCCEEDED"
            if task.failure is None:
                shelve(task.id, task.prompt, task.size, task.n)
        output["task_status"] = task.status
        output["end_time"] = "2026-01-01 00:00:10.000"
        if task.status == "FAILED" and task.failure:
            output["code"], output["message"] = task.failure
            return JSONResponse({"request_id": request_id, "output": output})
        if task.status == "CANCELED":
            return JSONResponse({"request_id": request_id, "output": output})
        urls = image_urls(request, task_id, task.n)
        if task.kind == "results":
            output["results"] = [
                {"orig_prompt": task.prompt, "actual_prompt": task.prompt, "url": url}
                for url in urls
            ]
        else:
            output["finished"] = True
            output["choices"] = [
                {
                    "finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": [{"image": url, "type": "image"} for url in urls],
                    },
                }
            ]
        output["task_metrics"] = {"TOTAL": task.n, "SUCCEEDED": task.n, "FAILED": 0}
        return JSONResponse(
            {"request_id": request_id, "output": output, "usage": {"image_count": task.n}}
        )

    @app.post("/api/v1/tasks/{task_id}/cancel")
    async def cancel_task(task_id: str) -> Response:
        task = tasks.get(task_id)
        if task is None or task.status != "PENDING":
            return _error(
                400,
                "UnsupportedOperation",
                "Failed to cancel the task, please confirm if the task is in PENDING status.",
            )
        task.status = "CANCELED"
        return JSONResponse({"request_id": str(uuid.uuid4())})

    shelf.serve(
        app,
        _RESULTS,
        missing=lambda: Response(_DENIED, status_code=403),
        guard=lambda request: bool(request.query_params.get("Signature")),
    )
    return app
