"""A rolling restart under load loses nothing: every API and worker process is stopped (SIGTERM,
exit 0) and started again, one at a time, while jobs with webhooks keep coming in (sandbox jobs
taking a second each, so some are always in flight)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from imagegate.testing.invariants import WebhookReceiver, check_invariants, sandbox_submits
from tests.acceptance.cluster import Cluster, create_live_key, submit_jobs, wait_until_settled
from tests.acceptance.conftest import wait_until_healthy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

MIN_JOBS = 100


async def _restart_each(cluster: Cluster) -> None:
    for name in list(cluster.nodes):
        await asyncio.sleep(1)
        assert await asyncio.to_thread(cluster.terminate, name, 30) == 0, cluster.log(name)
        await asyncio.to_thread(cluster.restart, name)


async def _under_load(cluster: Cluster, key: str, webhook_url: str) -> list[str]:
    """Submit jobs in small batches from before the first restart until after the last one.

    A few jobs a second, each taking a second, keep several in flight at every moment; a faster
    stream only piles up hundreds of jobs and slows the restarts down by competing for the CPU.
    """
    base_urls = [api.base_url for api in cluster.apis]
    restarting = asyncio.create_task(_restart_each(cluster))
    accepted: list[str] = []
    batch = 0
    while not restarting.done() or len(accepted) < MIN_JOBS:
        batch += 1
        accepted += await submit_jobs(
            base_urls, key, 4, webhook_url, concurrency=2, prompt=f"batch-{batch}"
        )
        await asyncio.sleep(0.25)
    await restarting
    return accepted


def test_restarting_every_process_in_turn_loses_nothing(fresh_pg_url: str, tmp_path: Path) -> None:
    receiver = WebhookReceiver()
    cluster = Cluster(
        tmp_path,
        fresh_pg_url,
        IMAGEGATE_SANDBOX_LATENCY_SECONDS="1",
        IMAGEGATE_SANDBOX_PROGRESS_STEPS="2",
        IMAGEGATE_POLL_INTERVAL_SECONDS="0.2",
        IMAGEGATE_SHUTDOWN_GRACE_SECONDS="5",
        IMAGEGATE_LEASE_SECONDS="60",
    )
    try:
        with receiver.running():
            apis = [cluster.start_api(f"api-{n + 1}", wait=False) for n in range(2)]
            cluster.start_worker("worker-1")
            cluster.start_worker("worker-2")
            for api in apis:
                wait_until_healthy(api.base_url, api.process)
            key = asyncio.run(create_live_key(fresh_pg_url, credits=100_000))
            accepted = asyncio.run(_under_load(cluster, key, receiver.url))
            asyncio.run(wait_until_settled(fresh_pg_url, timeout=120))
            tally = asyncio.run(
                check_invariants(
                    fresh_pg_url,
                    expected_jobs=accepted,
                    upstream_calls=sandbox_submits(cluster.submit_log),
                    webhooks=receiver.by_job(),
                )
            )
    finally:
        cluster.close()
    assert len(set(accepted)) == len(accepted) >= MIN_JOBS
    assert tally.by_status == {"COMPLETED": len(accepted)}
