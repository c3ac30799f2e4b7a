"""Admission under contention: concurrent submits against an account cap, spread over two API
processes, let exactly the cap in, on SQLite and on PostgreSQL, and the ledger adds up."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import func, select

from imagegate.api.app import create_app
from imagegate.runtime import build_runtime
from imagegate.services import accounts as account_service
from imagegate.store import accounts
from imagegate.store.tables import ledger_entries
from tests.conftest import count_rows, make_settings
from tests.integration.conftest import SANDBOX_ROUTES, open_gateway
from tests.integration.limits.conftest import GPT, GPT_COST

CAP = 100
CREDITS = 10 * CAP * GPT_COST
IN_FLIGHT = 16
"""Submits in flight per API process at once: within its 20 database connections, so a request
never waits out the pool's timeout (a 503) on a busy machine; each still races the others."""


async def limited(gate: asyncio.Semaphore, request: Awaitable[httpx2.Response]) -> httpx2.Response:
    async with gate:
        return await request


@pytest.mark.parametrize(
    ("settings", "account_limits"),
    [
        ({"max_queued_jobs_per_account": CAP}, {}),
        ({}, {"max_concurrent_jobs": CAP}),
        ({}, {"max_daily_spend": CAP * GPT_COST}),
    ],
    ids=["queued-jobs", "concurrent-jobs", "daily-spend"],
)
async def test_twice_the_cap_in_concurrent_submits_admits_exactly_the_cap(
    database_url: str,
    tmp_path: Path,
    settings: dict[str, Any],
    account_limits: dict[str, int],
) -> None:
    common: dict[str, Any] = {"routes": SANDBOX_ROUTES, "rate_limit_submit": "", **settings}
    async with open_gateway(database_url, tmp_path, credits=CREDITS, **common) as gw:
        if account_limits:
            await account_service.set_account_limits(gw.runtime.db, gw.account_id, account_limits)
        other = build_runtime(make_settings(database_url, tmp_path, **common), clock=gw.clock)
        transport = httpx2.ASGITransport(app=create_app(other))
        try:
            async with httpx2.AsyncClient(transport=transport, base_url="http://other") as second:
                headers = gw.headers(gw.live_key)
                first_gate, second_gate = asyncio.Semaphore(IN_FLIGHT), asyncio.Semaphore(IN_FLIGHT)
                responses = await asyncio.gather(
                    *(limited(first_gate, gw.submit(GPT, key=gw.live_key)) for _ in range(CAP)),
                    *(
                        limited(
                            second_gate,
                            second.post("/v2/images/generate", json=GPT, headers=headers),
                        )
                        for _ in range(CAP)
                    ),
                )
        finally:
            await other.aclose()

        statuses = Counter(response.status_code for response in responses)
        assert statuses == {202: CAP, 429: CAP}, statuses
        assert await count_rows(gw.runtime.db, "jobs") == CAP
        assert await gw.balance() == CREDITS - CAP * GPT_COST
        async with gw.runtime.db.read() as conn:
            assert await accounts.ledger_sum(conn, gw.account_id) == CREDITS - CAP * GPT_COST
            reserves = await conn.scalar(
                select(func.count()).where(ledger_entries.c.kind == "reserve")
            )
        assert reserves == CAP
