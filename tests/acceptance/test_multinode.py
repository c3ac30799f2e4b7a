"""Multi-node, as deployed: 2 API processes and 3 workers on one PostgreSQL and one SeaweedFS.

300 jobs with webhooks go in through both API processes, enough that each API process accepts a
share and each worker runs a share; afterwards every invariant holds (each job ended once, one
upstream call each, each final webhook delivered once, the ledger balanced), and any job's images
can be read through either API process.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest

from imagegate.testing.invariants import WebhookReceiver, check_invariants, sandbox_submits
from imagegate.testing.seaweed import S3Server, create_bucket, seaweedfs_server
from tests.acceptance.cluster import (
    Cluster,
    create_live_key,
    scrape,
    submit_jobs,
    total,
    wait_until_settled,
)
from tests.acceptance.conftest import wait_until_healthy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

JOBS = 300
WORKERS = 3


@pytest.fixture
def seaweed(tmp_path: Path) -> Iterator[S3Server]:
    with seaweedfs_server(tmp_path / "seaweedfs") as server:
        yield server


def job_sha256(job: dict[str, Any]) -> str:
    digest: str = job["outputs"][0]["sha256"]
    return digest


def test_two_api_and_three_worker_processes_share_the_work(
    fresh_pg_url: str, seaweed: S3Server, tmp_path: Path
) -> None:
    create_bucket(seaweed, "nodes")
    cluster = Cluster(
        tmp_path,
        fresh_pg_url,
        IMAGEGATE_STORAGE_URL="s3://nodes/imagegate",
        IMAGEGATE_STORAGE_URL_MODE="gateway",
        IMAGEGATE_STORAGE_OPTIONS=json.dumps(seaweed.storage_options()),
        IMAGEGATE_SANDBOX_LATENCY_SECONDS="0",
        IMAGEGATE_POLL_INTERVAL_SECONDS="0.2",
    )
    receiver = WebhookReceiver()
    try:
        with receiver.running():
            apis = [cluster.start_api(f"api-{n + 1}", wait=False) for n in range(2)]
            workers = [f"worker-{n + 1}" for n in range(WORKERS)]
            for name in workers:
                cluster.start_worker(name, concurrency=8)
            for api in apis:
                wait_until_healthy(api.base_url, api.process)
            for name in workers:
                cluster.wait_until_working(name)
            key = asyncio.run(create_live_key(fresh_pg_url, credits=100_000))
            accepted = asyncio.run(
                submit_jobs([api.base_url for api in apis], key, JOBS, receiver.url)
            )
            asyncio.run(wait_until_settled(fresh_pg_url, timeout=240))
            tally = asyncio.run(
                check_invariants(
                    fresh_pg_url,
                    expected_jobs=accepted,
                    upstream_calls=sandbox_submits(cluster.submit_log),
                    webhooks=receiver.by_job(),
                )
            )
            assert len(set(accepted)) == JOBS
            assert tally.by_status == {"COMPLETED": JOBS}

            # The load was shared: each API process accepted and each worker ran a fair part.
            submitted = [
                total(scrape(f"{api.base_url}/metrics"), "imagegate_jobs_submitted_total")
                for api in apis
            ]
            assert sum(submitted) == JOBS and min(submitted) >= JOBS // 4, submitted
            ran = {name: cluster.log(name).count('"job.completed"') for name in workers}
            assert sum(ran.values()) == JOBS and min(ran.values()) >= JOBS // 10, ran

            with httpx2.Client(timeout=10) as http:
                for job_id in accepted[:: JOBS // 10]:
                    job = http.get(
                        f"{apis[0].base_url}/v2/jobs/{job_id}", headers={"X-API-Key": key}
                    ).json()
                    image = urlsplit(job["result"]["images"][0])
                    path = f"{image.path}?{image.query}"
                    bodies = [http.get(f"{api.base_url}{path}") for api in apis]
                    assert [b.status_code for b in bodies] == [200, 200]
                    assert bodies[0].content == bodies[1].content
                    assert hashlib.sha256(bodies[0].content).hexdigest() == job_sha256(job)
    finally:
        cluster.close()
