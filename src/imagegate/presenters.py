"""The Apiframe wire format: every JSON body about a job, built by pure functions from records.

The API routes, the webhook sender and the tests all build job JSON here and nowhere else, so a
job reads the same in ``GET /v2/jobs/{id}``, in the job list and in a webhook. Nothing here does
I/O: result URLs are signed by the caller (they expire, so they are signed on every read) and
passed in with the job as a ``SignedJob``.

The module imports only ``store`` records and the shared vocabulary, so both ``api`` and
``webhooks`` may import it; it sits just above ``store`` in the layering.

Key order is part of the contract (clients diff bodies, and webhook signatures cover the bytes):
each builder writes its keys in the order Apiframe documents them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from imagegate.store.jobs import JobRow
from imagegate.store.outputs import OutputRecord
from imagegate.store.webhooks import AttemptRow, DeliveryRow
from imagegate.types import JobStatus, Millis, WebhookEvent, WebhookStatus

__all__ = [
    "SignedJob",
    "accepted_body",
    "delivery_log_body",
    "iso",
    "job_body",
    "job_page_body",
    "output_keys",
    "redelivery_body",
    "webhook_body",
]


def iso(ms: Millis | None) -> str | None:
    """Millisecond ISO-8601 in UTC with ``Z``, as Apiframe writes times."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _shown_outputs(job: JobRow) -> Sequence[OutputRecord]:
    """The outputs a body shows: a completed job's, until retention deleted them."""
    if job.status != JobStatus.COMPLETED.value or job.expired or not job.outputs:
        return ()
    return job.outputs


def output_keys(job: JobRow) -> list[str]:
    """The storage keys whose signed URLs ``job_body`` needs for this job (often none)."""
    return [record.key for record in _shown_outputs(job)]


@dataclass(frozen=True)
class SignedJob:
    """A job with a signed URL for each key of ``output_keys(job)``, ready to present."""

    job: JobRow
    urls: Mapping[str, str]


def _result(signed: SignedJob) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    """``result`` (image URLs, and ``gridUrl`` for a grid) and ``outputs`` (one per image)."""
    records = _shown_outputs(signed.job)
    if not records:
        return None, None
    images: list[str] = []
    outputs: list[dict[str, Any]] = []
    grid: str | None = None
    for record in records:
        url = signed.urls[record.key]
        if record.grid:
            grid = url
            continue
        images.append(url)
        outputs.append(
            {
                "contentType": record.content_type,
                "byteSize": record.byte_size,
                "width": record.width,
                "height": record.height,
                "sha256": record.sha256,
                "url": url,
            }
        )
    result: dict[str, Any] = {"images": images}
    if grid is not None:
        result["gridUrl"] = grid
    return result, outputs


def job_body(signed: SignedJob, *, with_input: bool = True) -> dict[str, Any]:
    """Apiframe's ``Job``, as ``GET /v2/jobs/{id}`` shows it; the list leaves out ``input``."""
    job = signed.job
    result, outputs = _result(signed)
    body: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "model": job.model,
        "progress": job.progress,
        "result": result,
        "error": job.error,
        "creditCost": job.credit_cost,
        "webhookStatus": job.webhook_status,
        "createdAt": iso(job.created_at),
        "completedAt": iso(job.completed_at),
        "expired": job.expired,
    }
    if outputs is not None:
        body["outputs"] = outputs
    if job.provider and not job.sandbox:
        body["servedBy"] = {"provider": job.provider, "model": job.upstream_model}
    if job.sandbox:
        body["sandbox"] = True
    if job.expires_at is not None:
        body["expiresAt"] = iso(job.expires_at)
    if with_input:
        body["input"] = job.input
    return body


def job_page_body(
    jobs: Sequence[SignedJob], next_cursor: str | None, has_more: bool, models: list[str] | None
) -> dict[str, Any]:
    """Apiframe's ``JobList``; ``models`` only when the client asked for them."""
    body: dict[str, Any] = {
        "jobs": [job_body(signed, with_input=False) for signed in jobs],
        "nextCursor": next_cursor,
        "hasMore": has_more,
    }
    if models is not None:
        body["models"] = models
    return body


def accepted_body(job_id: str, status: JobStatus) -> dict[str, Any]:
    """The 202 body of a submit: ``{"jobId", "status"}``."""
    return {"jobId": job_id, "status": status.value}


def webhook_body(event: str, signed: SignedJob, *, progress: int | None = None) -> dict[str, Any]:
    """Apiframe's webhook body for ``event``; ``result`` is the same object as on the job.

    ``progress`` is the progress a ``progress`` delivery announces: the one recorded with its
    event, not the job's current one (a late retry must not claim another moment's progress).
    """
    job = signed.job
    status = JobStatus.PROCESSING.value if progress is not None else job.status
    base: dict[str, Any] = {"event": event, "jobId": job.id, "status": status}
    if event == WebhookEvent.COMPLETED:
        return {
            **base,
            "progress": job.progress,
            "result": _result(signed)[0],
            "model": job.model,
            "creditCost": job.credit_cost,
            "completedAt": iso(job.completed_at),
        }
    if event == WebhookEvent.FAILED:
        return {
            **base,
            "error": job.error,
            "model": job.model,
            "creditCost": job.credit_cost,
            "completedAt": iso(job.completed_at),
        }
    shown = progress if progress is not None else job.progress
    return {**base, "progress": shown, "model": job.model}


def delivery_log_body(
    job: JobRow, deliveries: Sequence[DeliveryRow], attempts: Sequence[AttemptRow]
) -> dict[str, Any]:
    """``GET /v2/jobs/{id}/webhooks``: every delivery of the job's webhook with its attempts."""
    return {
        "jobId": job.id,
        "webhookUrl": job.webhook_url,
        "webhookStatus": job.webhook_status,
        "deliveries": [
            {
                "id": d.id,
                "event": d.event,
                "status": d.status,
                "attempts": [
                    {
                        "attemptedAt": iso(a.attempted_at),
                        "statusCode": a.status_code,
                        "latencyMs": a.latency_ms,
                        "error": a.error,
                        "nextAttemptAt": iso(a.next_attempt_at),
                    }
                    for a in attempts
                    if a.delivery_id == d.id
                ],
                "nextAttemptAt": iso(d.run_at) if d.status == WebhookStatus.PENDING else None,
                "createdAt": iso(d.created_at),
                "deliveredAt": iso(d.delivered_at),
            }
            for d in deliveries
        ],
    }


def redelivery_body(delivery: DeliveryRow) -> dict[str, Any]:
    """``POST /v2/jobs/{id}/webhooks/redeliver``: the delivery queued again."""
    return {"id": delivery.id, "event": delivery.event, "status": WebhookStatus.PENDING.value}
