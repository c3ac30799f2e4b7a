"""``GET /v2/jobs``, ``GET /v2/jobs/{id}``, ``POST /v2/jobs/{id}/cancel``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from imagegate.api.deps import CallerDep, RuntimeDep
from imagegate.presenters import job_body, job_page_body
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
    return job_page_body(page.jobs, page.next_cursor, page.has_more, page.models)


@router.get("/v2/jobs/{id}", summary="Get a job")
async def get_job(id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """A job's status, progress, result URLs (signed, expiring), error and cost."""
    return job_body(await runtime.jobs.show(caller, id))


@router.post("/v2/jobs/{id}/cancel", summary="Cancel a job")
async def cancel_job(id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """Cancel a queued or running job and refund its credits; 409 once it has finished."""
    return job_body(await runtime.jobs.cancel(caller, id))
