from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from imagegate.store.db import Database


@pytest.fixture
async def sqlite_db(sqlite_url: str) -> AsyncIterator[Database]:
    """A ``Database`` on a fresh migrated SQLite file, disposed after the test."""
    database = Database(sqlite_url)
    yield database
    await database.dispose()


def submit_item(
    account_id: str,
    *,
    cost: int = 0,
    at: int = 1_000,
    key: str | None = None,
    max_queued: int = 1_000,
) -> dict[str, Any]:
    """One item of PostgreSQL's ``submit_jobs`` argument: a job of ``cost`` credits (a free
    sandbox job by default) submitted at ``at``, with ``key`` as its Idempotency-Key."""
    return {
        "account_id": account_id,
        "id": str(uuid.uuid4()),
        "key": key,
        "credit_cost": cost,
        "created_at": at,
        "api_key_id": None,
        "model": "midjourney",
        "prompt": "a test",
        "input": {},
        "params": {},
        "outputs_expected": 1,
        "sandbox": cost == 0,
        "webhook_url": None,
        "webhook_events": None,
        "retention_days": None,
        "deadline_at": at + 1_000,
        "max_queued": max_queued,
        "day_start": 0,
        "fingerprint": "f",
        "key_expires_at": at + 5_000,
    }
