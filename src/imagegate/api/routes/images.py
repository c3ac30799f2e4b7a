"""``POST /v2/images/generate``."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic_core import to_json

from imagegate.api.bodies import decode_json
from imagegate.api.deps import caller_of, runtime_of
from imagegate.presenters import accepted_body, job_body
from imagegate.runtime import Runtime
from imagegate.services.accounts import Caller
from imagegate.services.direct_jobs import DirectJobs
from imagegate.services.submit import Accepted
from imagegate.types import JobStatus

__all__ = ["ERRORS", "MAX_WAIT_SECONDS", "PreferHeader", "answer", "prefer_wait", "router"]

MAX_WAIT_SECONDS = 60
"""The longest ``Prefer: wait=N`` honoured; larger values are clamped to it."""


def header_parameter(name: str, description: str) -> dict[str, Any]:
    """An optional header in the OpenAPI document, for a route that reads it itself."""
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }


IDEMPOTENCY_KEY = header_parameter(
    "Idempotency-Key",
    "The same key with the same body answers the same job (for 24 h unless configured).",
)
RETENTION_DAYS = header_parameter(
    "X-Retention-Days", "Keep this job's outputs N days instead of the operator's default."
)
PREFER = header_parameter(
    "Prefer",
    "`wait=N` (RFC 7240): answer 200 with the finished job if it ends within N seconds "
    f"(at most {MAX_WAIT_SECONDS}), else the usual 202.",
)

PreferHeader = Annotated[
    str | None,
    Header(
        alias="Prefer",
        description=(
            "`wait=N` (RFC 7240): answer 200 with the finished job if it ends within N seconds "
            f"(at most {MAX_WAIT_SECONDS}), else the usual 202."
        ),
    ),
]

_WAIT = re.compile(r"(?:^|[,;])\s*wait\s*=\s*\"?(\d+)\"?\s*(?=$|[,;])", re.IGNORECASE)

router = APIRouter(tags=["Images"])

JSON = "application/json"

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Validation failed; `details` names each offending JSON path."},
    401: {"description": "Missing or invalid API key."},
    402: {"description": "Insufficient credits."},
    403: {"description": "API key is inactive."},
    409: {"description": "Idempotency-Key reused with a different body."},
    413: {"description": "Request body too large."},
    429: {"description": "Too many queued jobs; retry after `Retry-After` seconds."},
    503: {"description": "Database or queue unavailable; retry after `Retry-After` seconds."},
}


def prefer_wait(prefer: str | None) -> int | None:
    """The seconds a ``Prefer`` header asks to wait (clamped to 60), or None when it does not."""
    match = _WAIT.search(prefer or "")
    return min(int(match.group(1)), MAX_WAIT_SECONDS) if match else None


def _headers(result: Accepted) -> dict[str, str]:
    headers = {"Location": f"/v2/jobs/{result.job_id}"}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return headers


def accepted(result: Accepted) -> Response:
    """202 with the job id; a replayed Idempotency-Key says so in ``Idempotent-Replayed``."""
    body = to_json(accepted_body(result.job_id, result.status))  # what JSONResponse renders
    return Response(body, status_code=202, headers=_headers(result), media_type=JSON)


async def answer(
    runtime: Runtime,
    caller: Caller,
    result: Accepted,
    prefer: str | None,
    direct: DirectJobs | None = None,
) -> Response:
    """The answer to a submit: with ``Prefer: wait=N``, 200 and the finished job (as ``GET
    /v2/jobs/{id}``) if it ends within N seconds, else 202; ``Preference-Applied`` says the
    wait was honoured. Replays of an ``Idempotency-Key`` are answered the same way. A job
    submitted with ``direct``'s claim runs here (``services.direct_jobs``)."""
    wait = prefer_wait(prefer)
    if wait is None:
        return accepted(result)
    deadline = asyncio.get_running_loop().time() + wait
    job = await (direct or runtime.direct_jobs()).finish(caller, result, deadline)
    headers = {**_headers(result), "Preference-Applied": f"wait={wait}"}
    if JobStatus(job.status).is_terminal:
        body = job_body(await runtime.jobs.sign(job))
        return JSONResponse(body, status_code=200, headers=headers)
    body = accepted_body(result.job_id, JobStatus(job.status))
    return JSONResponse(body, status_code=202, headers=headers)


@router.post(
    "/v2/images/generate",
    status_code=202,
    summary="Generate images",
    description=(
        "Queue an image generation job. The body is discriminated on `model`; each model takes "
        "its own params object (`fluxParams`, `midjourneyParams`, …). Returns 202 with the job "
        "id at once; poll `GET /v2/jobs/{id}`, follow `GET /v2/jobs/{id}/events` or receive "
        "webhooks. With `Prefer: wait=N` it answers 200 with the finished job when it ends "
        "within N seconds (at most 60)."
    ),
    responses={
        200: {"description": "With `Prefer: wait=N`: the job, finished within N seconds."},
        202: {"description": "Job accepted."},
        **ERRORS,
    },
    openapi_extra={
        "x-imagegate-body": "GenerateImageRequest",
        "parameters": [IDEMPOTENCY_KEY, RETENTION_DAYS, PREFER],
    },
)
async def generate(request: Request) -> Response:
    caller = await caller_of(request)
    runtime = runtime_of(request)
    headers = request.headers
    body = await decode_json(request)
    prefer = headers.get("prefer")
    direct = runtime.direct_jobs()
    result = await runtime.submitter.generate(
        caller,
        body,
        headers.get("idempotency-key"),
        headers.get("x-retention-days"),
        claim=direct.claim() if prefer_wait(prefer) else None,
    )
    return await answer(runtime, caller, result, prefer, direct)
