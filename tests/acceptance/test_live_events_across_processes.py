"""A job's event stream on one API process follows a job submitted through another and run by
a worker process: the change signal crosses processes (PostgreSQL NOTIFY, or Redis pub/sub)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx2
import pytest

from imagegate.runtime import build_runtime
from imagegate.services import accounts as account_service
from imagegate.types import KeyKind
from tests.acceptance.conftest import IMAGEGATE, child_env, free_port, wait_until_healthy
from tests.conftest import make_settings

pytestmark = pytest.mark.slow

ROUTES = {"gpt-image-1.5": ["sandbox:gpt-image-1.5"]}


class Processes:
    """Two ``serve --no-workers`` API processes and one ``worker``, on one database."""

    def __init__(self, workdir: Path, **settings: str) -> None:
        self.env = child_env(
            IMAGEGATE_DATA_DIR=str(workdir / "data"),
            IMAGEGATE_SIGNING_SECRET="test-signing-secret",
            IMAGEGATE_POLL_INTERVAL_SECONDS="0.1",
            IMAGEGATE_SANDBOX_LATENCY_SECONDS="2",
            IMAGEGATE_SANDBOX_PROGRESS_STEPS="4",
            # Far longer than the test: a stream that keeps up was woken by the signal.
            IMAGEGATE_EVENTS_POLL_SECONDS="600",
            IMAGEGATE_ROUTES=json.dumps(ROUTES),
            **settings,
        )
        self.log = (workdir / "processes.log").open("w")
        self.running: list[subprocess.Popen[str]] = []
        # Started together, as their start-up (imports, migration check) takes seconds each.
        starting = [self._serve(), self._serve()]
        self._start("worker")
        for base_url, process in starting:
            wait_until_healthy(base_url, process)
        self.api = [base_url for base_url, _ in starting]

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


@pytest.fixture(params=["postgres-notify", "redis-pubsub"])
def processes(
    request: pytest.FixtureRequest, pg_database_url: str, redis_url: str, tmp_path: Path
) -> Iterator[tuple[Processes, str]]:
    settings = {"IMAGEGATE_DATABASE_URL": pg_database_url}
    if request.param == "redis-pubsub":
        settings["IMAGEGATE_REDIS_URL"] = redis_url
        settings["IMAGEGATE_REDIS_PREFIX"] = f"imagegate-test-{uuid.uuid4().hex[:8]}"
    key = _test_key(pg_database_url, tmp_path)
    running = Processes(tmp_path, **settings)
    try:
        yield running, key
    finally:
        running.stop()


def _test_key(database_url: str, tmp_path: Path) -> str:
    async def make() -> str:
        runtime = build_runtime(make_settings(database_url, tmp_path / "data"))
        db, clock = runtime.db, runtime.clock
        account = await account_service.create_account(db, clock, f"live-{uuid.uuid4().hex[:6]}")
        key = await account_service.create_key(db, clock, account.id, KeyKind.TEST, "test")
        await runtime.aclose()
        return key.secret

    return asyncio.run(make())


def test_a_stream_on_one_api_process_follows_a_job_submitted_through_another_live(
    processes: tuple[Processes, str],
) -> None:
    running, key = processes
    first, second = running.api
    headers = {"X-API-Key": key}
    body = {"model": "gpt-image-1.5", "prompt": "a harbour at night"}

    submitted = httpx2.post(f"{second}/v2/images/generate", json=body, headers=headers, timeout=10)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["jobId"]

    arrivals: list[tuple[float, str, dict[str, object]]] = []
    with httpx2.stream(
        "GET", f"{first}/v2/jobs/{job_id}/events", headers=headers, timeout=30
    ) as stream:
        assert stream.status_code == 200
        event = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                arrivals.append((time.time(), event, json.loads(line.removeprefix("data: "))))

    kinds = [kind for _, kind, _ in arrivals]
    assert kinds[0] == "queued" and kinds[-2:] == ["completed", "job"], kinds
    assert "progress" in kinds
    final = arrivals[-1][2]
    assert final["id"] == job_id and final["status"] == "COMPLETED"
    completed_at = datetime.fromisoformat(str(final["completedAt"])).timestamp()
    assert arrivals[-1][0] - completed_at < 5  # at once, not at the next safety-net poll
    first_progress = next(at for at, kind, _ in arrivals if kind == "progress")
    assert completed_at - first_progress > 0.2  # progress arrived while the job still ran
