"""``GET /v2/jobs``, ``GET /v2/jobs/{id}``, ``GET /v2/jobs/{id}/events``,
``POST /v2/jobs/{id}/cancel``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic_core import to_json

from imagegate.api.deps import CallerDep, RuntimeDep, caller_of, runtime_of
from imagegate.errors import ValidationFailed
from imagegate.presenters import SignedJob, iso, job_body, job_page_body
from imagegate.services.jobs import JobEvent, check_job_id
from imagegate.types import JobStatus

__all__ = ["event_body", "router", "sse"]

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


@router.get("/v2/jobs/{id}", summary="Get a job", response_model=dict[str, Any])
async def get_job(id: str, request: Request) -> Response:
    """A job's status, progress, result URLs (signed, expiring), error and cost."""
    caller = await caller_of(request)
    body = job_body(await runtime_of(request).jobs.show(caller, id))
    # Encoded as FastAPI encodes a returned dict (pydantic), finished here so that the hot
    # route (imagegate.api.hotroutes) answers the same bytes.
    return Response(to_json(body), media_type="application/json")


def event_body(job_id: str, event: JobEvent) -> dict[str, Any]:
    """The ``data`` of one stream event: the job's status and progress, and what happened."""
    return {
        "jobId": job_id,
        "event": event.kind,
        "status": event.status.value,
        "progress": event.progress,
        "at": iso(event.at),
        **({"data": event.data} if event.data else {}),
    }


def sse(data: Any, *, event: str | None = None, id: int | None = None) -> bytes:
    """One Server-Sent Event (data as one line of JSON); ``sse(None)`` is a heartbeat comment."""
    if data is None:
        return b": heartbeat\n\n"
    lines = []
    if id is not None:
        lines.append(f"id: {id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode()


def _last_event_id(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        raise ValidationFailed.field(
            "Last-Event-ID", "is not an event id this stream sent"
        ) from None


@router.get(
    "/v2/jobs/{id}/events",
    summary="Follow a job live (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream."},
        404: {"description": "No job with that id in your account."},
    },
)
async def job_events(
    id: str,
    runtime: RuntimeDep,
    caller: CallerDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Each change of the job as an event (`id` = the event's id, `event` = what happened:
    `queued`, `submitted`, `progress`, `stored`, `retry`, `completed`, `failed`, `cancelled`, …;
    `data` = `{"jobId", "event", "status", "progress", "at", "data"?}`), then one `job` event
    whose data is the finished job (as `GET /v2/jobs/{id}`), then the stream closes. A
    reconnect with `Last-Event-ID` gets exactly the events after that one. An idle stream
    sends a `: heartbeat` comment every 15 s (`IMAGEGATE_EVENTS_HEARTBEAT_SECONDS`)."""
    job_id = check_job_id(id)
    heartbeat = runtime.settings.events_heartbeat_seconds
    updates = await runtime.jobs.follow(caller, job_id, _last_event_id(last_event_id), heartbeat)

    async def stream() -> AsyncIterator[bytes]:
        try:
            async for update in updates:
                if isinstance(update, SignedJob):
                    yield sse(job_body(update), event="job")
                elif isinstance(update, JobEvent):
                    yield sse(event_body(job_id, update), event=update.kind, id=update.id)
                else:
                    yield sse(None)
        finally:  # a client that went away: stop watching the job now, not at garbage collection
            await updates.aclose()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


@router.post("/v2/jobs/{id}/cancel", summary="Cancel a job")
async def cancel_job(id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """Cancel a queued or running job and refund its credits; 409 once it has finished."""
    return job_body(await runtime.jobs.cancel(caller, id))
