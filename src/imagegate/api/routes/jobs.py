"""``GET /v2/jobs``, ``GET /v2/jobs/{id}``, ``POST /v2/jobs/{id}/cancel``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from imagegate.api.deps import CallerDep, RuntimeDep
from imagegate.types import JobStatus

__all__ = ["router"]

router = APIRouter(tags=["Jobs"])


@router.get("/v2/jobs", summary="List jobs")
async def list_jobs(
    runtime: RuntimeDep,
    caller: CallerDep,
    status: JobStatus | None = None,
    model: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
    scope: Literal["user", "team"] = "user",  # noqa: ARG001 - accepted, see docstring
    search: str | None = None,
    include_models: Literal["true", "false"] = "false",
) -> dict[str, Any]:
    """Newest first, cursor-paginated on `(createdAt desc, id desc)`. Every key of an account
    sees the account's jobs, so `scope=user` and `scope=team` list the same jobs."""
    page = await runtime.jobs.list(
        caller,
        limit=limit,
        cursor=cursor,
        status=status.value if status else None,
        model=model,
        search=search,
        include_models=include_models == "true",
    )
    body: dict[str, Any] = {
        "jobs": page.jobs,
        "nextCursor": page.next_cursor,
        "hasMore": page.has_more,
    }
    if page.models is not None:
        body["models"] = page.models
    return body


@router.get("/v2/jobs/{id}", summary="Get a job")
async def get_job(id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """A job's status, progress, result URLs (signed, expiring), error and cost."""
    return await runtime.jobs.view(await runtime.jobs.get(caller, id))


@router.post("/v2/jobs/{id}/cancel", summary="Cancel a job")
async def cancel_job(id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """Cancel a queued or running job and refund its credits; 409 once it has finished."""
    return await runtime.jobs.view(await runtime.jobs.cancel(caller, id))
