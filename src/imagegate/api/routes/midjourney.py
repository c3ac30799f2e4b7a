"""``POST /v2/images/midjourney/action``: upsample, vary, inpaint, zoom out or pan a job."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response

from imagegate.api.bodies import decode_json
from imagegate.api.deps import CallerDep, RuntimeDep
from imagegate.api.routes.images import ERRORS, PreferHeader, answer
from imagegate.services.actions import MASK_MAX_LENGTH, action_request_schema

__all__ = ["BODY_LIMIT", "PATH", "router"]

PATH = "/v2/images/midjourney/action"
BODY_LIMIT = MASK_MAX_LENGTH + 64 * 1024
"""An inpaint mask may be 12,000,000 base64 characters, over the default body limit."""

router = APIRouter(tags=["Images"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    400: {
        "description": (
            "Validation failed, or the parent is the wrong kind of job for the action; "
            "`details` names each offending field."
        )
    },
    404: {"description": "No parent job with that id in your account."},
    409: {
        "description": (
            "Idempotency-Key reused with a different body, or the action is not available for "
            "the parent (not COMPLETED yet, made with the other kind of key, or no upstream task)."
        )
    },
}


@router.post(
    PATH,
    status_code=202,
    summary="Act on a Midjourney job",
    description=(
        "Queue a follow-up action on a completed Midjourney job as a new job. `upsample` and "
        "`variation` pick image `index` of a grid; `inpaint`, `outpaint` and `pan` edit an "
        "upsample. Upsample costs 4 credits, the others 16. Returns 202 with the new job id."
    ),
    responses={
        200: {"description": "With `Prefer: wait=N`: the new job, finished within N seconds."},
        202: {"description": "Job accepted."},
        **RESPONSES,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": action_request_schema()}},
        }
    },
)
async def act(
    request: Request,
    runtime: RuntimeDep,
    caller: CallerDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    prefer: PreferHeader = None,
) -> Response:
    body = await decode_json(request)
    result = await runtime.actions.submit(caller, body, idempotency_key)
    return await answer(runtime, caller, result, prefer)
