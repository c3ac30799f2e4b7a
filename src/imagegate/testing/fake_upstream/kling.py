"""A fake Kling image API: ``POST /v1/images/generations`` and ``GET …/{task_id}``.

It checks the ``Authorization: Bearer <JWT>`` the way Kling does: an HS256 token whose ``iss`` is
the access key, signed with the secret key, inside its ``nbf``/``exp`` window on the fake's clock
(401 with codes 1001 empty, 1002 invalid, 1003 not yet valid, 1004 expired). Answers use Kling's
envelope ``{"code", "message", "request_id", "data"}``; tasks go ``submitted`` → ``processing`` →
``succeed``/``failed`` and a finished task lists ``task_result.images[{index, url}]``, one PNG
(rendered with Pillow, served by the fake) per requested image. Bodies are validated like
Kling's documentation says (400 code 1201 with the reason).

Words in the prompt steer it: ``moderate-me`` → 400 code 1301 at submit, ``moderate-output`` →
the task fails its risk check, ``rate-limit-me`` → 429 code 1302 with ``Retry-After``,
``no-credits`` → 429 code 1102, ``server-error`` → 500 code 5000, ``fail-me`` → ``failed``,
``slow`` → ``submitted`` then ``processing`` for a few polls.

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
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from imagegate.providers.sandbox import render
from imagegate.types import SystemClock

__all__ = ["create_app"]

MODELS = frozenset({"kling-v1", "kling-v1-5", "kling-v2", "kling-v2-new", "kling-v2-1", "kling-v3"})
ASPECT_RATIOS = {
    "16:9": (16, 9),
    "9:16": (9, 16),
    "1:1": (1, 1),
    "4:3": (4, 3),
    "3:4": (3, 4),
    "3:2": (3, 2),
    "2:3": (2, 3),
    "21:9": (21, 9),
}
_RISK = "Failure to pass the risk control system"


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
    app.state.requests = []
    app.state.tasks = {}

    @app.middleware("http")
    async def record_and_authenticate(request: Request, call_next: Any) -> Response:
        raw = await request.body()
        record: dict[str, Any] = {
            "method": request.method,
            "path": request.url.path,
            "headers": dict(request.headers),
            "json": json.loads(raw) if raw else None,
            "claims": None,
        }
        app.state.requests.append(record)
        if request.url.path.startswith("/v1/"):
            auth = request.headers.get("authorization", "")
            if not auth.startswith("Bearer ") or not auth[7:]:
                return _envelope(401, 1001, "Authorization is empty")
            now = int(clock.now_ms()) // 1000
            code, message, claims = _verify(auth[7:], access_key, secret_key, now)
            record["claims"] = claims
            if code:
                return _envelope(401, code, message)
        response: Response = await call_next(request)
        return response

    def task_view(task_id: str, task: dict[str, Any], request: Request) -> dict[str, Any]:
        view: dict[str, Any] = {
            "task_id": task_id,
            "task_status": task["status"],
            "task_status_msg": task.get("status_msg", ""),
            "task_info": {},
            "created_at": task["created_at"],
            "updated_at": int(clock.now_ms()),
        }
        if task["status"] == "succeed":
            base = str(request.base_url).rstrip("/")
            view["task_result"] = {
                "images": [
                    {"index": n, "url": f"{base}/kling-results/{task_id}/{n}.png"}
                    for n in range(task["n"])
                ]
            }
        return view

    @app.post("/v1/images/generations")
    async def create_task(request: Request) -> Response:
        body = await request.json()
        if (reason := _validate(body)) is not None:
            return _envelope(400, 1201, reason)
        prompt = str(body.get("prompt") or "")
        if "rate-limit-me" in prompt:
            return _envelope(429, 1302, "API request too frequent", **{"Retry-After": retry_after})
        if "no-credits" in prompt:
            return _envelope(429, 1102, "Account balance not enough")
        if "server-error" in prompt:
            return _envelope(500, 5000, "Server internal error")
        if "moderate-me" in prompt:
            return _envelope(400, 1301, _RISK)
        task_id = str(uuid.uuid4())
        ratio = ASPECT_RATIOS[body.get("aspect_ratio", "16:9")]
        task = {
            "status": "submitted",
            "prompt": prompt,
            "n": body.get("n", 1),
            "ratio": ratio,
            "polls": 0,
            "pending_polls": 3 if "slow" in prompt else 0,
            "created_at": int(clock.now_ms()),
        }
        app.state.tasks[task_id] = task
        return _envelope(200, 0, "SUCCEED", task_view(task_id, task, request))

    @app.get("/v1/images/generations/{task_id}")
    async def get_task(task_id: str, request: Request) -> Response:
        task = app.state.tasks.get(task_id)
        if task is None:
            return _envelope(404, 1203, "The requested task does not exist")
        if task["status"] in ("submitted", "processing"):
            task["polls"] += 1
            if task["polls"] <= task["pending_polls"]:
                task["status"] = "submitted" if task["polls"] == 1 else "processing"
            elif "moderate-output" in task["prompt"]:
                task["status"], task["status_msg"] = "failed", _RISK
            elif "fail-me" in task["prompt"]:
                task["status"] = "failed"
                task["status_msg"] = "Image generation failed, please try again later"
            else:
                task["status"] = "succeed"
        return _envelope(200, 0, "SUCCEED", task_view(task_id, task, request))

    @app.get("/kling-results/{task_id}/{index}.png")
    async def result_image(task_id: str, index: int) -> Response:
        task = app.state.tasks.get(task_id)
        if task is None or task["status"] != "succeed" or index >= task["n"]:
            return Response("Not Found", status_code=404)
        width, height = task["ratio"]
        scale = max_side / max(width, height)
        size = (round(width * scale), round(height * scale))
        return Response(render(task["prompt"], 0, index, size, "PNG"), media_type="image/png")

    return app
