"""A fake Kling image API: ``POST /v1/images/generations`` and ``GET …/{task_id}``.

It checks the ``Authorization: Bearer <JWT>`` the way Kling does: an HS256 token whose ``iss`` is
the access key, signed with the secret key, inside its ``nbf``/``exp`` window on the fake's clock
(401 with codes 1001 empty, 1002 invalid, 1003 not yet valid, 1004 expired). Answers use Kling's
envelope ``{"code", "message", "request_id", "data"}``; tasks go ``submitted`` → ``processing`` →
``succeed``/``failed`` and a finished task lists ``task_result.images[{index, url}]``, one PNG
(rendered with Pillow, served by the fake) per requested image. Bodies are validated like
Kling's documentation says (400 code 1201 with the reason).

Prompt switches (see ``kit``): at submit ``rate-limit-me`` (429 code 1302), ``no-credits`` (429
code 1102), ``server-error`` (500 code 5000), ``moderate-me`` (400 code 1301); when the task ends
``moderate-output`` (fails its risk check), ``fail-me``; ``slow``.

Options: ``access_key`` (default ``ak-test``), ``secret_key`` (default ``sk-test``), ``clock``
(anything with ``now_ms()``; default the system clock), ``retry_after`` (default 4),
``max_side`` (default 256). ``app.state.requests`` records every request, with the decoded JWT
claims under ``claims``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from imagegate.providers.sandbox import render
from imagegate.testing.fake_upstream import kit
from imagegate.testing.fake_upstream.kit import Switch
from imagegate.types import SystemClock

__all__ = ["create_app"]

MODELS = frozenset({"kling-v1", "kling-v1-5", "kling-v2", "kling-v2-new", "kling-v2-1", "kling-v3"})
ASPECT_RATIOS = kit.ratios("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "21:9")
_RISK = "Failure to pass the risk control system"
_RESULTS = "/kling-results/"
_FAILURES: Mapping[Switch, str] = {
    Switch.MODERATE_OUTPUT: _RISK,
    Switch.FAIL: "Image generation failed, please try again later",
}
"""The ``task_status_msg`` of a task that fails because the prompt asks for it."""


@dataclass(kw_only=True)
class _Task(kit.Task):
    n: int
    ratio: tuple[float, float]
    created_at: int
    status: str = "submitted"
    status_msg: str = ""


def _envelope(
    status: int, code: int, message: str, data: Any = None, **headers: str
) -> JSONResponse:
    body = {"code": code, "message": message, "request_id": str(uuid.uuid4()), "data": data}
    return JSONResponse(body, status_code=status, headers=headers or None)


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _verify(token: str, access_key: str, secret_key: str, now: int) -> tuple[int, str, Any]:
    """``(0, "", claims)`` for a good token, else Kling's auth error code and message."""
    try:
        header_b64, payload_b64, signature_b64 = token.split(".")
        header = json.loads(_unb64(header_b64))
        claims = json.loads(_unb64(payload_b64))
        signature = _unb64(signature_b64)
    except ValueError:
        return 1002, "Authorization is invalid", None
    expected = hmac.new(
        secret_key.encode(), f"{header_b64}.{payload_b64}".encode(), hashlib.sha256
    ).digest()
    if header.get("alg") != "HS256" or not hmac.compare_digest(signature, expected):
        return 1002, "Authorization is invalid", None
    if claims.get("iss") != access_key:
        return 1002, "Authorization is invalid", None
    if int(claims.get("nbf", 0)) > now:
        return 1003, "Authorization is not yet valid", claims
    if int(claims.get("exp", 0)) <= now:
        return 1004, "Authorization has expired", claims
    return 0, "", claims


def _validate(body: Any) -> str | None:
    """Kling's documented request rules; the reason text for a 1201, or ``None``."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    model = body.get("model_name", "kling-v1")
    if model not in MODELS:
        return f"model_name {model!r} is not supported"
    prompt = body.get("prompt")
    image = body.get("image")
    if not image and (not isinstance(prompt, str) or not prompt):
        return "prompt is required"
    if isinstance(prompt, str) and len(prompt) > 2500:
        return "prompt must be at most 2500 characters"
    n = body.get("n", 1)
    if not isinstance(n, int) or not 1 <= n <= 9:
        return "n must be between 1 and 9"
    if body.get("aspect_ratio", "16:9") not in ASPECT_RATIOS:
        return "aspect_ratio is invalid"
    if body.get("resolution", "1k") not in ("1k", "2k"):
        return "resolution must be 1k or 2k"
    if image:
        if body.get("negative_prompt"):
            return "negative_prompt is not supported when image is provided"
        if str(image).startswith("data:"):
            return "image base64 must not carry a data: prefix"
        if model == "kling-v1-5" and body.get("image_reference") not in ("subject", "face"):
            return "image_reference is required for kling-v1-5 with an image"
        fidelity = body.get("image_fidelity", 0.5)
        if not isinstance(fidelity, int | float) or not 0 <= fidelity <= 1:
            return "image_fidelity must be between 0 and 1"
    return None


def create_app(**options: Any) -> FastAPI:
    access_key = str(options.get("access_key", "ak-test"))
    secret_key = str(options.get("secret_key", "sk-test"))
    clock = options.get("clock") or SystemClock()
    retry_after = str(options.get("retry_after", 4))
    max_side = int(options.get("max_side", 256))

    app = FastAPI(title="fake Kling API")
    app.state.tasks = tasks = kit.TaskBook(_Task, slow_polls=3)
    shelf = kit.ImageShelf()

    def verify(headers: Mapping[str, str]) -> tuple[int, str, Any]:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:]:
            return 1001, "Authorization is empty", None
        return _verify(auth[7:], access_key, secret_key, int(clock.now_ms()) // 1000)

    def authenticate(request: Request) -> Response | None:
        code, message, _ = verify(request.headers)
        return _envelope(401, code, message) if code else None

    def view(record: kit.RecordedRequest) -> dict[str, Any]:
        """The plain record, and the JWT claims of an API call (``None`` if unreadable)."""
        claims = verify(record.headers)[2] if record.path.startswith("/v1/") else None
        return record.as_dict() | {"claims": claims}

    kit.record_requests(
        app, view=view, authenticate=authenticate, guarded=lambda path: path.startswith("/v1/")
    )
    refusals: Mapping[Switch, Callable[[], Response]] = {
        Switch.RATE_LIMIT: lambda: _envelope(
            429, 1302, "API request too frequent", **{"Retry-After": retry_after}
        ),
        Switch.NO_CREDITS: lambda: _envelope(429, 1102, "Account balance not enough"),
        Switch.SERVER_ERROR: lambda: _envelope(500, 5000, "Server internal error"),
        Switch.MODERATE: lambda: _envelope(400, 1301, _RISK),
    }

    def task_view(task: _Task, request: Request) -> dict[str, Any]:
        view: dict[str, Any] = {
            "task_id": task.id,
            "task_status": task.status,
            "task_status_msg": task.status_msg,
            "task_info": {},
            "created_at": task.created_at,
            "updated_at": int(clock.now_ms()),
        }
        if task.status == "succeed":
            view["task_result"] = {
                "images": [
                    {"index": n, "url": shelf.url(request, f"{_RESULTS}{task.id}/{n}.png")}
                    for n in range(task.n)
                ]
            }
        return view

    @app.post("/v1/images/generations")
    async def create_task(request: Request) -> Response:
        body = await request.json()
        if (reason := _validate(body)) is not None:
            return _envelope(400, 1201, reason)
        prompt = str(body.get("prompt") or "")
        if (refused := kit.steer(prompt, refusals)) is not None:
            return refused
        task = tasks.open(
            prompt,
            n=body.get("n", 1),
            ratio=ASPECT_RATIOS[body.get("aspect_ratio", "16:9")],
            created_at=int(clock.now_ms()),
        )
        return _envelope(200, 0, "SUCCEED", task_view(task, request))

    @app.get("/v1/images/generations/{task_id}")
    async def get_task(task_id: str, request: Request) -> Response:
        task = tasks.get(task_id)
        if task is None:
            return _envelope(404, 1203, "The requested task does not exist")
        if task.status in ("submitted", "processing"):
            task.poll()
            failure = kit.pick(task.prompt, _FAILURES)
            if not task.finished:
                task.status = "submitted" if task.polls == 1 else "processing"
            elif failure is not None:
                task.status, task.status_msg = "failed", failure
            else:
                task.status = "succeed"
                size = kit.fit(task.ratio, max_side, floor=0)
                for index in range(task.n):
                    data = render(task.prompt, 0, index, size, "PNG")
                    shelf.put(f"{_RESULTS}{task.id}/{index}.png", data, "image/png")
        return _envelope(200, 0, "SUCCEED", task_view(task, request))

    shelf.serve(app, _RESULTS, missing=lambda: Response("Not Found", status_code=404))
    return app
