"""The account's own keys, ledger and webhook secret, and the operator's view of the gateway.

``/v2/account/...`` acts on the caller's account only; the rules (a key never revokes itself, a
test key acts only on test keys, revoking is final) are in ``services.accounts``.
``/v2/operator/status`` answers only keys of the operator's account (the first account).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from imagegate.api.deps import CallerDep, RuntimeDep
from imagegate.api.routes.health import provider_status
from imagegate.errors import Forbidden
from imagegate.presenters import iso
from imagegate.services import accounts as account_service
from imagegate.settings import ProviderSettings
from imagegate.store.accounts import ApiKeyRow, LedgerRow
from imagegate.store.operations import queue_summary
from imagegate.store.providers import Health
from imagegate.types import KeyKind

__all__ = ["router"]

router = APIRouter(tags=["Account"])


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    kind: Literal["live", "test"] | None = None
    """Defaults to the kind of the key making the request."""


def _key(row: ApiKeyRow, caller_key_id: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "kind": row.kind.value,
        "status": row.status,
        "createdAt": iso(row.created_at),
        "current": row.id == caller_key_id,
    }


def _entry(row: LedgerRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "amount": row.amount,
        "balanceAfter": row.balance_after,
        "jobId": row.job_id,
        "note": row.note,
        "createdAt": iso(row.created_at),
    }


@router.get("/v2/account/ledger", summary="Balance and credit ledger")
async def ledger(
    runtime: RuntimeDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """Every credit movement (grant, reserve, capture, refund), newest first; `nextCursor`
    pages on. `balanceAfter` is the balance once the row was written."""
    page = await account_service.ledger_page(runtime.db, caller, limit=limit, cursor=cursor)
    return {
        "balance": page.balance,
        "entries": [_entry(row) for row in page.entries],
        "nextCursor": page.next_cursor,
    }


@router.get("/v2/account/keys", summary="List the account's API keys")
async def list_keys(runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """Every key of the account (never the key itself: only its prefix); `current` marks the
    key making the request."""
    rows = await account_service.account_keys(runtime.db, caller)
    return {"keys": [_key(row, caller.key_id) for row in rows]}


@router.post("/v2/account/keys", status_code=201, summary="Create an API key")
async def create_key(body: KeyCreate, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """A new key of the account. `key` is in this answer only: it is stored as a hash. A test
    key can create only test keys (403)."""
    kind = KeyKind(body.kind) if body.kind else caller.kind
    created = await account_service.create_own_key(
        runtime.db, runtime.clock, caller, kind, body.name
    )
    return {**_key(created.row, caller.key_id), "key": created.secret}


async def _set_status(
    runtime: RuntimeDep, caller: CallerDep, key_id: str, status: str
) -> dict[str, Any]:
    row = await account_service.set_own_key_status(
        runtime.db, runtime.clock, caller, key_id, status
    )
    return _key(row, caller.key_id)


@router.post("/v2/account/keys/{key_id}/revoke", summary="Revoke an API key")
async def revoke_key(key_id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """From now on the key gets 401. Final. A key cannot revoke itself (409)."""
    return await _set_status(runtime, caller, key_id, "revoked")


@router.post("/v2/account/keys/{key_id}/deactivate", summary="Deactivate an API key")
async def deactivate_key(key_id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """From now on the key gets 403 until it is activated again. A key cannot deactivate
    itself (409)."""
    return await _set_status(runtime, caller, key_id, "inactive")


@router.post("/v2/account/keys/{key_id}/activate", summary="Activate an API key again")
async def activate_key(key_id: str, runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """Undo a deactivation (a revoked key stays revoked: 409)."""
    return await _set_status(runtime, caller, key_id, "active")


@router.get("/v2/account/webhook-secret", summary="The webhook signing secret")
async def webhook_secret(runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """The secret that signs this account's Standard Webhooks headers, and the previous one,
    which still signs beside it until the next rotation."""
    current, previous = await account_service.webhook_secrets(runtime.db, caller)
    return {"secret": current, "previous": previous}


@router.post("/v2/account/webhook-secret/rotate", summary="Rotate the webhook signing secret")
async def rotate_webhook_secret(runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """A new secret; the one it replaces keeps signing beside it until the next rotation."""
    current, previous = await account_service.rotate_webhook_secret(runtime.db, caller.account_id)
    return {"secret": current, "previous": previous}


@router.get("/v2/operator/status", summary="Providers and queue (operator only)")
async def operator_status(runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """Each provider (configured, or called since the start) with its circuit, cool-down,
    failures and concurrency cap, and the queue's depth with its oldest queued job. Only keys of
    the first account (the one `imagegate serve` created on its first start) may read it;
    others get 403."""
    if not await account_service.is_operator(runtime.db, caller):
        raise Forbidden("Only keys of the operator's account (the first account) see this")
    now = runtime.clock.now_ms()
    seen = {health.provider: health for health in await runtime.gates.snapshot()}
    for name in runtime.settings.providers:
        seen.setdefault(name, Health(name))
    providers = []
    for health in sorted(seen.values(), key=lambda h: h.provider):
        config = runtime.settings.providers.get(health.provider) or ProviderSettings()
        providers.append(
            {
                "provider": health.provider,
                "status": provider_status(health, now),
                "failures": health.failures,
                "circuitOpenUntil": iso(health.open_until) if health.open_until > now else None,
                "cooldownUntil": iso(health.cooldown_until)
                if health.cooldown_until > now
                else None,
                "maxConcurrency": config.max_concurrency,
                "ratePerMinute": config.rate_per_minute,
                "error": health.misconfigured,
            }
        )
    async with runtime.db.read() as conn:
        queue = await queue_summary(conn)
    return {
        "providers": providers,
        "queue": {
            "queued": queue.queued,
            "processing": queue.processing,
            "oldestQueuedJobId": queue.oldest_queued_id,
            "oldestQueuedAt": iso(queue.oldest_queued_at),
        },
        "now": iso(now),
    }
