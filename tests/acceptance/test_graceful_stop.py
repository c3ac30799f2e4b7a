"""SIGTERM stops a process gracefully: it exits 0 within its grace period, and a job it could not
finish is handed back, so another worker resumes it at once instead of after the lease."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from imagegate.store.db import Database
from imagegate.store.tables import jobs
from imagegate.testing.fake_upstream import create_app
from imagegate.testing.invariants import WebhookReceiver, check_invariants
from tests.acceptance.cluster import (
    MODEL,
    Cluster,
    create_live_key,
    serving_in_thread,
    submit_jobs,
    wait_until_settled,
)
from tests.acceptance.conftest import wait_until_healthy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

LEASE_SECONDS = 120
GRACE_SECONDS = 1


class FirstCallHangs:
    """The fake OpenAI, except that the first image call hangs (a vendor taking its time)."""

    def __init__(self) -> None:
        self.app = create_app("openai")
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/images/generations":
            self.calls += 1
            if self.calls == 1:
                await asyncio.sleep(LEASE_SECONDS)
        await self.app(scope, receive, send)


async def _job_row(database_url: str) -> Any:
    db = Database(database_url)
    try:
        async with db.read() as conn:
            return (await conn.execute(select(jobs))).mappings().one_or_none()
    finally:
        await db.dispose()


async def _wait_for(database_url: str, ready: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = await _job_row(database_url)
        if row is not None and ready(row):
            return row
        await asyncio.sleep(0.1)
    raise AssertionError(f"the job never got there: {row}")


@pytest.mark.parametrize("holder", ["worker", "serve"])
def test_sigterm_hands_a_job_in_flight_to_another_worker_at_once(
    holder: str, fresh_pg_url: str, tmp_path: Path
) -> None:
    """``holder`` is the process running the job when it is stopped: a ``worker``, or a
    ``serve`` with its own workers."""
    vendor = FirstCallHangs()
    receiver = WebhookReceiver()
    with serving_in_thread(vendor) as vendor_url, receiver.running():
        cluster = Cluster(
            tmp_path,
            fresh_pg_url,
            routes={MODEL: ["openai:gpt-image-1.5"]},
            providers={"openai": {"api_key": "sk-fake-openai", "base_url": f"{vendor_url}/v1"}},
            IMAGEGATE_LEASE_SECONDS=str(LEASE_SECONDS),
            IMAGEGATE_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
            IMAGEGATE_POLL_INTERVAL_SECONDS="0.2",
        )
        try:
            if holder == "serve":
                api = cluster.start_embedded("holder", workers=1)
            else:
                api = cluster.start_api("api", wait=False)
                cluster.start_worker("holder", concurrency=1)
                wait_until_healthy(api.base_url, api.process)
            key = asyncio.run(create_live_key(fresh_pg_url, credits=100))
            [job_id] = asyncio.run(submit_jobs([api.base_url], key, 1, receiver.url))
            held = asyncio.run(
                _wait_for(fresh_pg_url, lambda r: r["call_started_at"] is not None, 60)
            )
            assert cluster.node_of_owner(held["lease_owner"]) == "holder"
            cluster.start_worker("other", concurrency=1)
            cluster.wait_until_working("other")

            stopped = time.monotonic()
            assert cluster.terminate("holder", timeout=GRACE_SECONDS + 15) == 0
            assert time.monotonic() - stopped < GRACE_SECONDS + 10
            done = asyncio.run(
                _wait_for(fresh_pg_url, lambda r: r["status"] == "COMPLETED", LEASE_SECONDS / 4)
            )
            assert time.monotonic() - stopped < LEASE_SECONDS / 4
            asyncio.run(wait_until_settled(fresh_pg_url, timeout=30))
            asyncio.run(
                check_invariants(
                    fresh_pg_url,
                    expected_jobs=[job_id],
                    upstream_calls={job_id: vendor.calls},
                    webhooks=receiver.by_job(),
                )
            )
            assert '"worker.stopped"' in cluster.log("holder")
            if holder == "worker":
                assert cluster.terminate("api") == 0
        finally:
            cluster.close()
    # The call cut off by the stop is resubmitted once, as documented, and counted on the job.
    assert vendor.calls == 2
    assert done["interrupted_calls"] == 1
