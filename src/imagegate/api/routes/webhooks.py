"""``GET /v2/jobs/{id}/webhooks`` and ``POST /v2/jobs/{id}/webhooks/redeliver``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from imagegate.api.deps import CallerDep, RuntimeDep
from imagegate.presenters import delivery_log_body, redelivery_body

__all__ = ["router"]

router = APIRouter(tags=["Webhooks"])


@router.get("/v2/jobs/{id}/webhooks", summary="Webhook deliveries of a job")
async def list_deliveries(id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """Each delivery (event, status, next attempt) with every attempt's status code, latency
    and error."""
    log = await runtime.webhooks.list(caller, id)
    return delivery_log_body(log.job, log.deliveries, log.attempts)


@router.post("/v2/jobs/{id}/webhooks/redeliver", status_code=202, summary="Redeliver a webhook")
async def redeliver(id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """Queue the job's last `completed`/`failed` event again (same `webhook-id`)."""
    return redelivery_body(await runtime.webhooks.redeliver(caller, id))
