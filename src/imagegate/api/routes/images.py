"""``POST /v2/images/generate``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse

from imagegate.api.bodies import decode_json
from imagegate.api.deps import CallerDep, RuntimeDep
from imagegate.presenters import accepted_body
from imagegate.services.submit import Accepted

__all__ = ["ERRORS", "accepted", "router"]

router = APIRouter(tags=["Images"])

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


def accepted(result: Accepted) -> Response:
    """202 with the job id; a replayed Idempotency-Key says so in ``Idempotent-Replayed``."""
    headers = {"Location": f"/v2/jobs/{result.job_id}"}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    body = accepted_body(result.job_id, result.status)
    return JSONResponse(body, status_code=202, headers=headers)


@router.post(
    "/v2/images/generate",
    status_code=202,
    summary="Generate images",
    description=(
        "Queue an image generation job. The body is discriminated on `model`; each model takes "
        "its own params object (`fluxParams`, `midjourneyParams`, …). Returns 202 with the job "
        "id at once; poll `GET /v2/jobs/{id}` or receive webhooks."
    ),
    responses={202: {"description": "Job accepted."}, **ERRORS},
    openapi_extra={"x-imagegate-body": "GenerateImageRequest"},
)
async def generate(
    request: Request,
    runtime: RuntimeDep,
    caller: CallerDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    retention_days: Annotated[
        str | None,
        Header(
            alias="X-Retention-Days",
            description="Keep this job's outputs N days instead of the operator's default.",
        ),
    ] = None,
) -> Response:
    body = await decode_json(request)
    result = await runtime.submitter.generate(caller, body, idempotency_key, retention_days)
    return accepted(result)
