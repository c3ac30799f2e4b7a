"""SIGKILL a worker mid-job: another worker finishes it, submitted once upstream, charged once."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from imagegate.runtime import build_runtime
from imagegate.services import accounts as account_service
from imagegate.store import accounts
from imagegate.store import jobs as job_store
from imagegate.store.jobs import JobRow
from imagegate.store.tables import ledger_entries
from imagegate.testing.invariants import check_invariants, sandbox_submits
from imagegate.types import KeyKind
from tests.acceptance.conftest import IMAGEGATE, child_env
from tests.conftest import make_settings

pytestmark = pytest.mark.slow

ROUTES = {"gpt-image-1.5": ["sandbox:gpt-image-1.5"]}


async def _job(runtime: Any, job_id: str) -> JobRow:
    async with runtime.db.read() as conn:
        job = await job_store.get_job(conn, job_id)
    assert job is not None
    return job


async def _wait_for(runtime: Any, job_id: str, ready: Any, timeout: float = 30) -> JobRow:
    deadline = time.monotonic() + timeout
    while True:
        job = await _job(runtime, job_id)
        if ready(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job never reached the expected state: {job}")
        await asyncio.sleep(0.05)


async def test_killed_worker_loses_nothing(database_url: str, tmp_path: Path) -> None:
    submit_log = tmp_path / "sandbox-submits.log"
    providers = {"sandbox": {"options": {"submit_log": str(submit_log)}}}
    common = {
        "lease_seconds": 1.5,
        "poll_interval_seconds": 0.1,
        "sandbox_latency_seconds": 3.0,
        "sandbox_progress_steps": 10,
        "routes": ROUTES,
        "providers": providers,
    }
    settings = make_settings(database_url, tmp_path / "data", **common)
    runtime = build_runtime(settings)
    account = await account_service.create_account(runtime.db, runtime.clock, "crash")
    key = await account_service.create_key(runtime.db, runtime.clock, account.id, KeyKind.LIVE, "k")
    await account_service.grant_credits(runtime.db, runtime.clock, account.id, 100)
    caller = await account_service.authenticate(runtime.db, key.secret)
    body = {"model": "gpt-image-1.5", "prompt": "a storm", "gptImageParams": {"quality": "medium"}}
    accepted = await runtime.submitter.generate(caller, body, None)

    env = child_env(
        IMAGEGATE_DATABASE_URL=database_url,
        IMAGEGATE_DATA_DIR=str(tmp_path / "data"),
        IMAGEGATE_SIGNING_SECRET="test-signing-secret",
        IMAGEGATE_LEASE_SECONDS="1.5",
        IMAGEGATE_POLL_INTERVAL_SECONDS="0.1",
        IMAGEGATE_SANDBOX_LATENCY_SECONDS="3",
        IMAGEGATE_SANDBOX_PROGRESS_STEPS="10",
        IMAGEGATE_ROUTES=json.dumps(ROUTES),
        IMAGEGATE_PROVIDERS=json.dumps(providers),
    )
    first = subprocess.Popen(
        [IMAGEGATE, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    second: subprocess.Popen[bytes] | None = None
    try:
        polling = await _wait_for(
            runtime, accepted.job_id, lambda j: j.provider_task_id is not None and j.progress > 0
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert polling.status == "PROCESSING"

        second = subprocess.Popen(
            [IMAGEGATE, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        done = await _wait_for(runtime, accepted.job_id, lambda j: j.status == "COMPLETED")
    finally:
        first.kill()
        if second is not None:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=20) == 0

    assert done.provider_task_id == polling.provider_task_id
    submits = [line.split() for line in submit_log.read_text().splitlines()]
    assert [s for s in submits if s[0] == accepted.job_id] == [
        [accepted.job_id, polling.provider_task_id]
    ]
    async with runtime.db.read() as conn:
        kinds = (
            (
                await conn.execute(
                    select(ledger_entries.c.kind).where(ledger_entries.c.job_id == accepted.job_id)
                )
            )
            .scalars()
            .all()
        )
        balance = await accounts.balance(conn, account.id)
    assert sorted(kinds) == ["capture", "reserve"]
    assert balance == 100 - 9
    assert done.credit_cost == 9
    await runtime.aclose()
    await check_invariants(
        database_url, expected_jobs=[accepted.job_id], upstream_calls=sandbox_submits(submit_log)
    )
