"""The shared invariant checker passes a clean run and names each kind of broken invariant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

from imagegate.store.tables import accounts, job_events, jobs, ledger_entries
from imagegate.testing.invariants import InvariantsBroken, check_invariants
from tests.integration.conftest import SANDBOX_ROUTES, Gateway, open_gateway

BODY = {"model": "gpt-image-1.5", "prompt": "a lake", "gptImageParams": {"quality": "low"}}


async def _finished_job(gateway: Gateway) -> str:
    response = await gateway.submit(BODY, gateway.live_key)
    assert response.status_code == 202, response.text
    await gateway.drain()
    job_id: str = response.json()["jobId"]
    return job_id


async def _check(gateway: Gateway, **observed: Any) -> None:
    await check_invariants(gateway.runtime.settings.database_url, **observed)


async def test_a_clean_run_passes_and_is_tallied(gateway: Gateway) -> None:
    job_id = await _finished_job(gateway)
    tally = await check_invariants(
        gateway.runtime.settings.database_url,
        expected_jobs=[job_id],
        upstream_calls={job_id: 1},
    )
    assert tally.by_status == {"COMPLETED": 1}


async def test_a_job_left_queued_is_reported(gateway: Gateway) -> None:
    response = await gateway.submit(BODY, gateway.live_key)
    assert response.status_code == 202
    with pytest.raises(InvariantsBroken, match="a job did not end: 1"):
        await _check(gateway)


async def test_a_second_upstream_call_is_reported(gateway: Gateway) -> None:
    job_id = await _finished_job(gateway)
    with pytest.raises(InvariantsBroken, match="an upstream answer was bought twice: 1"):
        await _check(gateway, upstream_calls={job_id: 2})


async def test_a_missing_or_repeated_webhook_is_reported(gateway: Gateway) -> None:
    job_id = await _finished_job(gateway)
    async with gateway.runtime.db.transaction() as conn:
        await conn.execute(update(jobs).values(webhook_url="http://127.0.0.1:9/hook"))
    with pytest.raises(InvariantsBroken, match="a final webhook was not delivered exactly once"):
        await _check(gateway)
    with pytest.raises(InvariantsBroken, match="the receiver did not get the final webhook"):
        await _check(gateway, webhooks={job_id: [("completed", "a"), ("completed", "b")]})


async def test_an_unbalanced_ledger_is_reported(gateway: Gateway) -> None:
    await _finished_job(gateway)
    async with gateway.runtime.db.transaction() as conn:
        await conn.execute(
            update(ledger_entries).where(ledger_entries.c.kind == "reserve").values(amount=-1)
        )
    with pytest.raises(InvariantsBroken, match="an account's credits do not match its ledger"):
        await _check(gateway)


async def test_admission_counts_that_drift_from_the_jobs_are_reported(
    database_url: str, tmp_path: Path
) -> None:
    # SQLite keeps one row per account; PostgreSQL one per account and session (0014).
    async with open_gateway(database_url, tmp_path / "data", routes=SANDBOX_ROUTES) as gateway:
        await _finished_job(gateway)
        drift = (
            "INSERT INTO account_job_count_slots SELECT id, 0, 1, 0 FROM accounts"
            if gateway.runtime.db.is_postgres
            else "UPDATE account_job_counts SET queued = queued + 1"
        )
        async with gateway.runtime.db.transaction() as conn:
            await conn.execute(text(drift))
        with pytest.raises(InvariantsBroken, match="queued/processing counts do not match"):
            await _check(gateway)


async def test_a_failed_job_refunded_in_full_passes_and_a_test_keys_charge_does_not(
    gateway: Gateway,
) -> None:
    job_id = await _finished_job(gateway)
    async with gateway.runtime.db.transaction() as conn:
        cost = (await conn.execute(select(jobs.c.credit_cost))).scalar_one()
        # The job as ``fail`` leaves it: FAILED, costing 0, its reservation refunded.
        await conn.execute(
            update(ledger_entries)
            .where(ledger_entries.c.kind == "capture")
            .values(kind="refund", amount=cost, balance_after=ledger_entries.c.balance_after + cost)
        )
        await conn.execute(update(accounts).values(credits=accounts.c.credits + cost))
        await conn.execute(
            update(jobs).values(
                status="FAILED", credit_cost=0, error_code="upstream_error", error="cut off twice"
            )
        )
        await conn.execute(
            update(job_events).where(job_events.c.kind == "completed").values(kind="failed")
        )
    tally = await check_invariants(gateway.runtime.settings.database_url)
    assert tally.by_status == {"FAILED": 1}
    assert tally.not_completed == {"FAILED upstream_error: cut off twice": 1}

    async with gateway.runtime.db.transaction() as conn:
        await conn.execute(update(jobs).where(jobs.c.id == job_id).values(sandbox=True))
    with pytest.raises(InvariantsBroken, match="a test key's job has ledger entries: 1"):
        await _check(gateway)
