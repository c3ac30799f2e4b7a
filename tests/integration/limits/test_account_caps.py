"""Per-account caps on jobs in progress and on daily spend, and per-key allowed models: refused
at submit with a clear message and code, nothing written and nothing charged."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from imagegate.services import accounts as account_service
from imagegate.store import accounts
from imagegate.types import KeyKind
from tests.conftest import count_rows
from tests.integration.conftest import SANDBOX_ROUTES, Gateway, open_gateway
from tests.integration.limits.conftest import GPT, GPT_COST, MIDJOURNEY

DAY_MS = 86_400_000


@pytest.fixture
async def gateway(database_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with open_gateway(database_url, tmp_path / "data", routes=SANDBOX_ROUTES) as gw:
        yield gw


async def ledger_matches_balance(gw: Gateway) -> bool:
    async with gw.runtime.db.read() as conn:
        return await accounts.ledger_sum(conn, gw.account_id) == await gw.balance()


async def test_jobs_in_progress_beyond_the_account_cap_get_429(gateway: Gateway) -> None:
    gw = gateway
    await account_service.set_account_limits(
        gw.runtime.db, gw.account_id, {"max_concurrent_jobs": 2}
    )
    assert (await gw.submit(GPT, key=gw.live_key)).status_code == 202
    assert (await gw.submit(GPT)).status_code == 202

    refused = await gw.submit(GPT, key=gw.live_key)
    assert refused.status_code == 429
    assert refused.json()["code"] == "concurrent_jobs_limit"
    assert "2 of 2 allowed" in refused.json()["error"]
    assert refused.headers["Retry-After"] == "5"
    assert await count_rows(gw.runtime.db, "jobs") == 2
    assert await gw.balance() == 1000 - GPT_COST
    assert await ledger_matches_balance(gw)

    await gw.drain()  # both finish: room again
    assert (await gw.submit(GPT, key=gw.live_key)).status_code == 202

    await account_service.set_account_limits(
        gw.runtime.db, gw.account_id, {"max_concurrent_jobs": None}
    )
    assert (await gw.submit(GPT, key=gw.live_key)).status_code == 202


async def test_daily_spend_cap_refuses_until_midnight_utc(gateway: Gateway) -> None:
    gw = gateway
    # Tomorrow's 23:00 UTC: the clock starts at the real time and never goes back, and today's
    # has passed when the suite runs after it.
    now = gw.clock.now_ms()
    day_start = now - now % DAY_MS + DAY_MS
    gw.clock.set(day_start + DAY_MS - 3_600_000)
    cap = 3 * GPT_COST
    await account_service.set_account_limits(gw.runtime.db, gw.account_id, {"max_daily_spend": cap})

    first = await gw.submit(GPT, key=gw.live_key)
    assert first.status_code == 202
    assert (await gw.submit(GPT, key=gw.live_key)).status_code == 202
    cancelled = await gw.submit(GPT, key=gw.live_key)
    cancel = await gw.http.post(
        f"/v2/jobs/{cancelled.json()['jobId']}/cancel", headers=gw.headers(gw.live_key)
    )
    assert cancel.status_code == 200  # refunded: no longer spent
    assert (await gw.submit(GPT, key=gw.live_key)).status_code == 202

    refused = await gw.submit(GPT, key=gw.live_key)
    assert refused.status_code == 429
    assert refused.json()["code"] == "daily_spend_limit"
    assert f"{cap} of {cap} credits spent today" in refused.json()["error"]
    assert refused.headers["Retry-After"] == str(math.ceil(3_600_000 / 1000))
    assert (await gw.submit(GPT)).status_code == 202  # a test key spends nothing
    assert await gw.balance() == 1000 - cap
    assert await ledger_matches_balance(gw)

    gw.clock.set(day_start + DAY_MS)  # midnight UTC: a new day's budget
    assert (await gw.submit(GPT, key=gw.live_key)).status_code == 202
    assert await gw.balance() == 1000 - cap - GPT_COST


async def test_a_key_restricted_to_other_models_gets_403_naming_the_model(gateway: Gateway) -> None:
    gw = gateway
    created = await account_service.create_key(
        gw.runtime.db,
        gw.clock,
        gw.account_id,
        KeyKind.LIVE,
        "mj only",
        allowed_models=["midjourney"],
    )
    refused = await gw.submit(GPT, key=created.secret)
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "This API key may not use model 'gpt-image-1.5' (allowed: midjourney)",
        "code": "model_not_allowed",
    }
    assert await count_rows(gw.runtime.db, "jobs") == 0
    assert await gw.balance() == 1000

    assert (await gw.submit(MIDJOURNEY, key=created.secret)).status_code == 202
    assert (await gw.submit(GPT, key=gw.live_key)).status_code == 202  # other keys are free

    await account_service.set_key_limits(gw.runtime.db, created.secret, {"allowed_models": None})
    assert (await gw.submit(GPT, key=created.secret)).status_code == 202
