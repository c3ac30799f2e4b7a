"""Rows for tests that exercise the store and queue below the API."""

from __future__ import annotations

import uuid
from typing import Any

import uuid_utils

from imagegate.store import accounts
from imagegate.store import jobs as job_store
from imagegate.store.db import Database
from imagegate.types import JobStatus, JobStep


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
    job_id = str(uuid_utils.uuid7())
    values: dict[str, Any] = {
        "id": job_id,
        "account_id": account_id,
        "model": "midjourney",
        "status": JobStatus.QUEUED.value,
        "step": JobStep.SUBMIT.value,
        "prompt": "a test",
        "input": {"model": "midjourney", "prompt": "a test"},
        "params": {},
        "sandbox": True,
        "run_at": now,
        "deadline_at": now + 3_600_000,
        "created_at": now,
        "updated_at": now,
    }
    values.update(overrides)
    async with db.transaction() as conn:
        await job_store.insert_job(conn, values)
    return job_id
