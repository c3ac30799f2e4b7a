"""First start: an account, a live key with demo credits and a test key, shown once."""

from __future__ import annotations

from dataclasses import dataclass

from imagegate.services import accounts as account_service
from imagegate.store import accounts as store
from imagegate.store.db import Database
from imagegate.types import Clock, KeyKind

__all__ = ["FirstRun", "bootstrap"]

DEMO_CREDITS = 500


@dataclass(frozen=True)
class FirstRun:
    account_id: str
    live_key: str
    test_key: str
    credits: int


async def bootstrap(
    db: Database,
    clock: Clock,
    demo_credits: int = DEMO_CREDITS,
    *,
    email: str = "owner@localhost.localdomain",
) -> FirstRun | None:
    """Create the first account and its keys when the database has no account; else None.

    Two processes starting at once could both see an empty table; the second's keys would be an
    extra account. That is harmless, and ``serve`` is the only caller, one per deployment.
    ``email`` is the owner's (``owner_email``): Apiframe's ``Me`` requires a valid one.
    """
    async with db.read() as conn:
        if await store.list_accounts(conn):
            return None
    account = await account_service.create_account(db, clock, "default", email)
    live = await account_service.create_key(db, clock, account.id, KeyKind.LIVE, "default live")
    test = await account_service.create_key(db, clock, account.id, KeyKind.TEST, "default test")
    credits = await account_service.grant_credits(
        db, clock, account.id, demo_credits, "demo credits on first start"
    )
    return FirstRun(account.id, live.secret, test.secret, credits)
