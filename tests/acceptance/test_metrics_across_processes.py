"""Two API processes and a worker on one PostgreSQL: the cluster gauges agree on every API
process, and the per-process counters add up to what happened, none counted twice."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from imagegate.observability.metrics import CLUSTER_TTL_SECONDS
from imagegate.runtime import build_runtime
from imagegate.services import accounts as account_service
from imagegate.types import KeyKind
from tests.acceptance.cluster import Samples, scrape, total
from tests.acceptance.conftest import IMAGEGATE, child_env, free_port, wait_until_healthy
from tests.conftest import _truncate_pg, make_settings

pytestmark = pytest.mark.slow

MODEL = "gpt-image-1.5"
ROUTES = {MODEL: ["sandbox:gpt-image-1.5"]}
CREDITS = 10_000


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(have)[label] for (n, have), _ in samples.items() if n == name}


def cluster(samples: Samples) -> Samples:
    return {key: value for key, value in samples.items() if key[0] in CLUSTER_NAMES}


CLUSTER_NAMES = {
    "imagegate_jobs",
    "imagegate_queue_due",
    "imagegate_queue_oldest_queued_seconds",
    "imagegate_credits_captured",
    "imagegate_credits_refunded",
    "imagegate_webhook_deliveries",
}


class Deployment:
    def __init__(self, workdir: Path, database_url: str) -> None:
        self.env = child_env(
            IMAGEGATE_DATABASE_URL=database_url,
            IMAGEGATE_DATA_DIR=str(workdir / "data"),
            IMAGEGATE_SIGNING_SECRET="test-signing-secret",
            IMAGEGATE_POLL_INTERVAL_SECONDS="0.1",
            IMAGEGATE_SANDBOX_LATENCY_SECONDS="0.2",
            IMAGEGATE_ROUTES=json.dumps(ROUTES),
        )
        self.log = (workdir / "processes.log").open("w")
        self.running: list[subprocess.Popen[str]] = []
        # Started together, as their start-up (imports, migration check) takes seconds each.
        starting = [self._serve(), self._serve()]
        metrics_port = free_port()
        worker = self._start("worker", IMAGEGATE_WORKER_METRICS_PORT=str(metrics_port))
        for base_url, process in starting:
            wait_until_healthy(base_url, process)
        self.api = [base_url for base_url, _ in starting]
        self.worker_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
        deadline = time.monotonic() + 60
        while True:
            assert worker.poll() is None, "the worker exited"
            try:
                httpx2.get(self.worker_metrics, timeout=1)
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline, "the worker's metrics never answered"
                time.sleep(0.2)

    def _start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [IMAGEGATE, *args],
            env={**self.env, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.running.append(process)
        return process

    def _serve(self) -> tuple[str, subprocess.Popen[str]]:
        """Start an API process (not waiting for it); its base URL and process."""
        port = str(free_port())
        base_url = f"http://127.0.0.1:{port}"
        process = self._start(
            "serve", "--no-workers", "--port", port, IMAGEGATE_PUBLIC_BASE_URL=base_url
        )
        return base_url, process

    def stop(self) -> None:
        for process in self.running:
            process.terminate()
        for process in self.running:
            process.wait(timeout=30)
        self.log.close()


def _live_key(database_url: str, tmp_path: Path) -> str:
    async def make() -> str:
        runtime = build_runtime(make_settings(database_url, tmp_path / "keys"))
        db, clock = runtime.db, runtime.clock
        account = await account_service.create_account(db, clock, "metrics", "ops@metrics.test")
        key = await account_service.create_key(db, clock, account.id, KeyKind.LIVE, "live")
        await account_service.grant_credits(db, clock, account.id, CREDITS)
        await runtime.aclose()
        return key.secret

    return asyncio.run(make())


@pytest.fixture
def deployment(pg_database_url: str, tmp_path: Path) -> Iterator[tuple[Deployment, str]]:
    _truncate_pg(pg_database_url)
    key = _live_key(pg_database_url, tmp_path)
    running = Deployment(tmp_path, pg_database_url)
    try:
        yield running, key
    finally:
        running.stop()


def test_cluster_gauges_agree_and_counters_add_up(deployment: tuple[Deployment, str]) -> None:
    running, key = deployment
    headers = {"X-API-Key": key}
    prompts = ["a lighthouse"] * 4 + ["a storm [[fail:rejected]]"] * 2
    sent: dict[str, int] = defaultdict(int)
    job_ids = []
    for index, prompt in enumerate(prompts):
        api = running.api[index % 2]
        body = {"model": MODEL, "prompt": prompt, "gptImageParams": {"quality": "low"}}
        response = httpx2.post(f"{api}/v2/images/generate", json=body, headers=headers, timeout=10)
        assert response.status_code == 202, response.text
        job_ids.append(response.json()["jobId"])
        sent[api] += 1
    refused = httpx2.post(
        f"{running.api[0]}/v2/images/generate", json={"model": "nope"}, headers=headers
    )
    assert refused.status_code == 400

    deadline = time.monotonic() + 60
    statuses: dict[str, str] = {}
    while len(statuses) < len(job_ids):
        assert time.monotonic() < deadline, f"jobs did not finish: {statuses}"
        for job_id in job_ids:
            job = httpx2.get(f"{running.api[1]}/v2/jobs/{job_id}", headers=headers).json()
            if job["status"] in ("COMPLETED", "FAILED"):
                statuses[job_id] = job["status"]
        time.sleep(0.2)
    assert sorted(statuses.values()) == ["COMPLETED"] * 4 + ["FAILED"] * 2
    balance = httpx2.get(f"{running.api[0]}/v2/me", headers=headers).json()["team"]["credits"]
    time.sleep(CLUSTER_TTL_SECONDS + 0.2)  # neither API process may answer from an old read

    first, second = (scrape(f"{api}/metrics") for api in running.api)
    worker = scrape(running.worker_metrics)

    # The cluster's figures: the same on both API processes, and right.
    assert cluster(first) == cluster(second)
    assert total(first, "imagegate_jobs", status="COMPLETED", model=MODEL) == 4
    assert total(first, "imagegate_jobs", status="FAILED", model=MODEL) == 2
    assert label_values(first, "imagegate_jobs", "provider") == {"sandbox"}
    captured = total(first, "imagegate_credits_captured")
    refunded = total(first, "imagegate_credits_refunded")
    assert captured == CREDITS - balance > 0
    assert refunded == captured / 2  # two failed jobs of the same price as four completed
    assert total(first, "imagegate_queue_oldest_queued_seconds") == 0
    assert total(first, "imagegate_queue_due") == 0

    # Each process's counters: what it did, and together what the cluster did.
    generate = {"method": "POST", "route": "/v2/images/generate"}
    for api, samples in zip(running.api, (first, second), strict=True):
        assert (
            total(samples, "imagegate_http_requests_total", **generate, status="202") == (sent[api])
        )
        assert total(samples, "imagegate_jobs_finished_total") == 0  # API processes run no job
    assert total(first, "imagegate_http_requests_total", **generate, status="400") == 1
    assert total(second, "imagegate_http_requests_total", **generate, status="400") == 0
    assert total(first, "imagegate_jobs_submitted_total") + total(
        second, "imagegate_jobs_submitted_total"
    ) == len(prompts)
    assert total(worker, "imagegate_jobs_finished_total", status="COMPLETED") == 4
    assert total(worker, "imagegate_jobs_finished_total", status="FAILED") == 2
    assert label_values(worker, "imagegate_jobs_finished_total", "provider") == {"sandbox"}
    assert total(worker, "imagegate_upstream_call_seconds_count", provider="sandbox") >= 6
    assert not cluster(worker), "a worker must not serve the cluster's gauges"
