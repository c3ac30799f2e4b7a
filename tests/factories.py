"""Rows for tests that exercise the store and queue below the API."""

from __future__ import annotations

import uuid
from typing import Any

import uuid_utils
from sqlalchemy import update

from imagegate.store import accounts
from imagegate.store import jobs as job_store
from imagegate.store.db import Database
from imagegate.store.jobs import NewJob
from imagegate.store.tables import jobs


async def add_account(db: Database, credits: int = 0, now: int = 1_000) -> str:
    account_id = str(uuid.uuid4())
    async with db.transaction() as conn:
        await accounts.insert_account(
            conn, account_id=account_id, name="test", email=None, webhook_secret="whsec_x", now=now
        )
        if credits:
            await accounts.grant(conn, account_id, credits, now)
    return account_id


async def add_job(db: Database, account_id: str, now: int = 1_000, **overrides: Any) -> str:
    """A queued sandbox job created at ``now``; ``overrides`` then set any column directly."""
    job_id = str(uuid_utils.uuid7())
    new = NewJob(
        id=job_id,
        account_id=account_id,
        api_key_id=None,
        model="midjourney",
        prompt="a test",
        input={"model": "midjourney", "prompt": "a test"},
        params={},
        outputs_expected=1,
        sandbox=True,
        credit_cost=0,
        webhook_url=None,
        webhook_events=None,
        retention_days=None,
        created_at=now,
        deadline_at=now + 3_600_000,
    )
    async with db.transaction() as conn:
        await job_store.insert_job(conn, new)
        if overrides:
            await conn.execute(update(jobs).where(jobs.c.id == job_id).values(**overrides))
    return job_id
