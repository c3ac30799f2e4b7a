"""``GET /v2/me``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from imagegate.api.deps import CallerDep, RuntimeDep
from imagegate.errors import NotFound
from imagegate.store import accounts

__all__ = ["router"]

router = APIRouter(tags=["Account"])


@router.get("/v2/me", summary="Who am I")
async def me(runtime: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    async with runtime.db.read() as conn:
        account = await accounts.get_account(conn, caller.account_id)
    if account is None:
        raise NotFound("Account not found")
    return {
        # Apiframe's Me requires a valid email; accounts made before emails were required
        # show the operator's configured owner email.
        "user": {
            "id": account.id,
            "email": account.email or runtime.settings.owner_email,
            "role": "OWNER",
        },
        "team": {
            "id": account.id,
            "name": account.name,
            "credits": account.credits,
            "plan": "self-hosted",
            "customerId": None,
        },
        "apiKey": {
            "id": caller.key_id,
            "name": caller.key_name,
            "prefix": caller.key_prefix,
            "kind": caller.kind.value,
        },
    }
