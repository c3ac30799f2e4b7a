"""OpenAI-compatible images API: ``/v1/images/generations``, ``/v1/images/edits``, ``/v1/models``.

Every answer, errors included, is in OpenAI's shape, so OpenAI's own clients work unmodified:
errors are caught here and presented by ``imagegate.presenters_openai`` rather than by the
Apiframe handlers the ``/v2`` routes use. The calls wait for their job (``openai_wait_seconds``);
the job is an ordinary one under ``/v2/jobs``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from imagegate.api.bodies import decode_json
from imagegate.api.deps import RuntimeDep, api_key_from, runtime_of
from imagegate.api.errors import status_for
from imagegate.api.routes.images import IDEMPOTENCY_KEY
from imagegate.errors import (
    ImagegateError,
    InsufficientCredits,
    RateLimited,
    ServiceUnavailable,
    ValidationFailed,
)
from imagegate.presenters_openai import error_body, models_body
from imagegate.runtime import Runtime
from imagegate.services.accounts import Caller
from imagegate.services.openai_images import (
    ImageFile,
    JobDidNotFinish,
    JobEndedBadly,
    OpenAIImages,
    first_problem,
)
from imagegate.store.db import is_unavailable

__all__ = ["EDITS_PATH", "edits_body_limit", "router"]

router = APIRouter(tags=["OpenAI-compatible"])

EDITS_PATH = "/v1/images/edits"
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


def edits_body_limit(upload_max_bytes: int) -> int:
    """An edit carries up to 16 images and a mask; each may be as large as an upload."""
    return 4 * upload_max_bytes + 1024 * 1024


def _service(runtime: Runtime) -> OpenAIImages:
    return OpenAIImages(
        catalog=runtime.catalog,
        submitter=runtime.submitter,
        jobs=runtime.jobs,
        uploads=runtime.uploads,
        store=runtime.store,
        wait_seconds=runtime.settings.openai_wait_seconds,
        direct=runtime.direct_jobs(),
    )


def openai_error(error: ImagegateError) -> JSONResponse:
    """An imagegate error as OpenAI's ``{"error": {...}}``, with the same status codes."""
    headers: dict[str, str] = {}
    param: str | None = None
    message = error.message
    if isinstance(error, JobDidNotFinish):
        status = 504
    elif isinstance(error, JobEndedBadly):
        status = 400 if "moderat" in error.code else 502
    else:
        status = status_for(error)
    if isinstance(error, ValidationFailed):
        param, message = first_problem(error)
    if isinstance(error, InsufficientCredits):
        message = f"Insufficient credits: {error.required} required, {error.available} available"
    if isinstance(error, RateLimited | ServiceUnavailable):
        headers["Retry-After"] = str(error.retry_after)
    if status == 500:
        message = "Internal server error"
    body = error_body(status, message, param=param, code=error.code)
    return JSONResponse(body, status_code=status, headers=headers)


def _json_answer(body: Any) -> Response:
    """A ``/v1`` body as compact JSON, the bytes ``JSONResponse`` would send.

    Rendered by ``orjson``: a ``b64_json`` answer is one string of ~90 KB for a 64 KB image,
    which the standard library's encoder takes ~200 µs of the event loop to write (orjson
    ~3 µs).
    """
    return Response(orjson.dumps(body), media_type="application/json")


async def _answer(
    request: Request, runtime: Runtime, call: Callable[[Caller], Awaitable[Any]]
) -> Response:
    try:
        caller = await runtime.keys.authenticate(api_key_from(request))
        return _json_answer(await call(caller))
    except ImagegateError as exc:
        return openai_error(exc)
    except Exception as exc:
        if is_unavailable(exc):
            return openai_error(ServiceUnavailable())
        raise


@router.post(
    "/v1/images/generations",
    summary="Create images (OpenAI-compatible)",
    openapi_extra={"parameters": [IDEMPOTENCY_KEY]},
)
async def generations(request: Request) -> Response:
    """OpenAI's ``images.generate``: JSON body; waits for the job and answers its images."""
    runtime = runtime_of(request)
    idempotency_key = request.headers.get("idempotency-key")

    async def call(caller: Caller) -> Any:
        body = await decode_json(request)
        return await _service(runtime).generate(caller, body, idempotency_key)

    return await _answer(request, runtime, call)


@router.post(EDITS_PATH, summary="Edit images (OpenAI-compatible)")
async def edits(
    request: Request, runtime: RuntimeDep, idempotency_key: IdempotencyKey = None
) -> Response:
    """OpenAI's ``images.edit``: multipart ``image`` (or ``image[]``), optional ``mask``."""

    async def call(caller: Caller) -> Any:
        limit = runtime.settings.upload_max_bytes
        try:
            form = await request.form(max_files=32, max_fields=64, max_part_size=limit + 1)
        except (ValueError, HTTPException) as exc:
            reason = exc.detail if isinstance(exc, HTTPException) else str(exc)
            raise ValidationFailed.field("image", f"send multipart/form-data ({reason})") from None
        try:
            fields: dict[str, Any] = {}
            images: list[ImageFile] = []
            mask: ImageFile | None = None
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    data = ImageFile(await value.read())
                    if name in ("image", "image[]"):
                        images.append(data)
                    elif name == "mask":
                        mask = data
                    else:
                        raise ValidationFailed.field(name, "is not a file parameter")
                else:
                    fields[name] = value
        finally:
            await form.close()
        return await _service(runtime).edit(caller, fields, images, mask, idempotency_key)

    return await _answer(request, runtime, call)


@router.get("/v1/models", summary="List models (OpenAI-compatible)")
async def list_models(request: Request, runtime: RuntimeDep) -> Response:
    """Every catalog model id, usable as ``model`` on the two image endpoints."""

    async def call(_caller: Caller) -> Any:
        return models_body(_service(runtime).models(), created=0)

    return await _answer(request, runtime, call)
