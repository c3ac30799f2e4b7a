"""First start: an account, a live key with demo credits and a test key, shown once."""

from __future__ import annotations

from dataclasses import dataclass

import uuid_utils

from imagegate.domain.keys import generate_key, key_hash, key_prefix
from imagegate.store import accounts as store
from imagegate.store.db import Database
from imagegate.types import Clock, KeyKind
from imagegate.webhooks.signing import new_secret

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

    All in one transaction under the first-start lock (``store.lock_first_start``), so when
    several ``serve`` processes start together on an empty database exactly one creates the
    account and prints keys; the others find it and create nothing.
    ``email`` is the owner's (``owner_email``): Apiframe's ``Me`` requires a valid one.
    """
    async with db.read() as conn:  # the common case, a restart: no lock, no write
        if await store.first_account_id(conn) is not None:
            return None
    now = clock.now_ms()
    account_id = str(uuid_utils.uuid7())
    live, test = generate_key(KeyKind.LIVE), generate_key(KeyKind.TEST)
    async with db.transaction() as conn:
        await store.lock_first_start(conn)
        if await store.first_account_id(conn) is not None:
            return None  # another process got here first
        await store.insert_account(
            conn,
            account_id=account_id,
            name="default",
            email=email,
            webhook_secret=new_secret(),
            now=now,
        )
        keys = ((live, KeyKind.LIVE, "default live"), (test, KeyKind.TEST, "default test"))
        for secret, kind, name in keys:
            await store.insert_key(
                conn,
                key_id=str(uuid_utils.uuid7()),
                account_id=account_id,
                name=name,
                prefix=key_prefix(secret),
                key_hash=key_hash(secret),
                kind=kind,
                now=now,
            )
        note = "demo credits on first start"
        credits = await store.grant(conn, account_id, demo_credits, now, note)
    return FirstRun(account_id, live, test, credits)
