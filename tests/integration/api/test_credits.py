"""Credits under contention: the balance never goes negative and the ledger always adds up."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from imagegate.store import accounts
from imagegate.store.tables import ledger_entries
from tests.conftest import count_rows
from tests.integration.conftest import SANDBOX_ROUTES, open_gateway

BODY = {"model": "gpt-image-1.5", "prompt": "a coin", "gptImageParams": {"quality": "low"}}  # 4


async def test_five_n_concurrent_submits_with_credits_for_n_accept_exactly_n(
    database_url: str, tmp_path: Path
) -> None:
    n = 8
    async with open_gateway(database_url, tmp_path, credits=4 * n, routes=SANDBOX_ROUTES) as gw:
        responses = await asyncio.gather(*(gw.submit(BODY, key=gw.live_key) for _ in range(5 * n)))

        statuses = [r.status_code for r in responses]
        assert statuses.count(202) == n
        assert statuses.count(402) == 4 * n
        assert await gw.balance() == 0
        assert await count_rows(gw.runtime.db, "jobs") == n
        async with gw.runtime.db.read() as conn:
            assert await accounts.ledger_sum(conn, gw.account_id) == 0
            balances = (await conn.execute(select(ledger_entries.c.balance_after))).scalars().all()
        assert min(balances) >= 0

        await gw.drain()
        async with gw.runtime.db.read() as conn:
            kinds = (await conn.execute(select(ledger_entries.c.kind))).scalars().all()
        assert kinds.count("reserve") == n
        assert kinds.count("capture") == n
        assert await gw.balance() == 0


async def test_every_terminal_job_has_exactly_one_capture_or_refund(
    database_url: str, tmp_path: Path
) -> None:
    async with open_gateway(database_url, tmp_path, credits=100, routes=SANDBOX_ROUTES) as gw:
        ok = (await gw.submit(BODY, key=gw.live_key)).json()["jobId"]
        bad = (await gw.submit({**BODY, "prompt": "x [[fail:rejected]]"}, key=gw.live_key)).json()[
            "jobId"
        ]
        cancelled = (await gw.submit(BODY, key=gw.live_key)).json()["jobId"]
        await gw.http.post(f"/v2/jobs/{cancelled}/cancel", headers=gw.headers(gw.live_key))
        await gw.drain()

        async with gw.runtime.db.read() as conn:
            rows = (
                await conn.execute(select(ledger_entries.c.job_id, ledger_entries.c.kind))
            ).all()
            total = await accounts.ledger_sum(conn, gw.account_id)
        settled = {
            job: [k for j, k in rows if j == job and k in ("capture", "refund")]
            for job in (ok, bad, cancelled)
        }
        assert settled == {ok: ["capture"], bad: ["refund"], cancelled: ["refund"]}
        assert total == await gw.balance() == 96
