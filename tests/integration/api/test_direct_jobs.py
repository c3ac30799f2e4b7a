"""A request that waits for its job (``/v1/images/generations``, ``Prefer: wait``) in a process
that runs workers: the job runs in the request's task.

The job is written already claimed by the process's worker and its step runs under that lease,
so no worker loop runs in these tests (nothing else could have claimed the jobs). It is still an
ordinary job: charged once, its events and outputs recorded, its provider's cap honoured, a
cancel during the call wins, and a process that dies mid-call leaves a lease that expires and
lets any worker take the job over.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import select, text

from imagegate.providers.port import (
    Finished,
    GenerationRequest,
    OutputImage,
)
from imagegate.services import accounts as account_service
from imagegate.store import accounts
from imagegate.store import jobs as job_store
from imagegate.store.jobs import JobRow
from imagegate.store.tables import provider_leases
from tests.images import image_bytes
from tests.integration.conftest import Gateway, open_gateway
from tests.integration.vendors import SyncVendor

pytestmark = pytest.mark.timeout(30)

BODY = {"model": "gpt-image-1.5", "prompt": "a fox", "quality": "low"}
COST = 4
"""What one low-quality gpt-image-1.5 image costs."""


class HeldVendor(SyncVendor):
    """A synchronous vendor whose calls wait for ``open`` (set by default) and answer a PNG;
    it counts the calls and the most in flight at once."""

    name = "held"

    def __init__(self) -> None:
        super().__init__()
        self.open = asyncio.Event()
        self.open.set()
        self.called = asyncio.Event()
        self.in_flight = 0
        self.most_in_flight = 0

    async def answer(self, request: GenerationRequest) -> Finished:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.called.set()
        try:
            await self.open.wait()
        finally:
            self.in_flight -= 1
        return Finished(images=[OutputImage(data=image_bytes((8, 8)))])


@contextlib.asynccontextmanager
async def direct_gateway(
    database_url: str, tmp_path: Path, vendor: HeldVendor, **settings: Any
) -> AsyncIterator[Gateway]:
    """A gateway whose process has a worker (never started: its loop claims nothing)."""
    async with open_gateway(
        database_url,
        tmp_path,
        routes={"gpt-image-1.5": ["held:model-x"]},
        adapters={"held": vendor},
        **settings,
    ) as gw:
        gw.runtime.local_worker = gw.runtime.worker(owner="api-process")
        yield gw


def generate(gw: Gateway) -> asyncio.Task[httpx2.Response]:
    headers = {"Authorization": f"Bearer {gw.live_key}"}
    return asyncio.create_task(gw.http.post("/v1/images/generations", json=BODY, headers=headers))


async def only_job(gw: Gateway) -> JobRow:
    async with gw.runtime.db.read() as conn:
        [job] = await job_store.list_jobs(conn, gw.account_id, limit=10)
    return job


async def event_kinds(gw: Gateway, job_id: str) -> list[str]:
    async with gw.runtime.db.read() as conn:
        return [event["kind"] for event in await job_store.list_events(conn, job_id)]


async def direct_jobs(gw: Gateway, outcome: str) -> float:
    value = gw.runtime.metrics.registry.get_sample_value(
        "imagegate_direct_jobs_total", {"outcome": outcome}
    )
    return value or 0.0


async def ledger_matches_balance(gw: Gateway) -> bool:
    async with gw.runtime.db.read() as conn:
        return await accounts.ledger_sum(conn, gw.account_id) == await gw.balance()


async def test_the_job_runs_in_the_request_and_is_an_ordinary_charged_job(
    database_url: str, tmp_path: Path
) -> None:
    vendor = HeldVendor()
    async with direct_gateway(database_url, tmp_path, vendor) as gw:
        before = await gw.balance()
        response = await generate(gw)
        assert response.status_code == 200, response.text
        [image] = response.json()["data"]
        assert base64.b64decode(image["b64_json"]) == image_bytes((8, 8))
        job = await only_job(gw)
        assert job.status == "COMPLETED" and job.credit_cost == COST
        assert job.lease_token is None and job.call_started_at is None
        assert await event_kinds(gw, job.id) == ["queued", "stored", "completed"]
        assert vendor.submits == 1
        assert before - await gw.balance() == COST
        assert await ledger_matches_balance(gw)
        assert await direct_jobs(gw, "completed") == 1
        listed = await gw.job(job.id, key=gw.live_key)
        assert listed["status"] == "COMPLETED" and listed["creditCost"] == COST


async def test_a_second_call_past_the_providers_cap_waits_in_the_queue(
    database_url: str, tmp_path: Path
) -> None:
    vendor = HeldVendor()
    vendor.open.clear()
    settings: dict[str, Any] = {
        "providers": {"held": {"max_concurrency": 1}},
        "provider_wait_seconds": 0.1,
    }
    async with direct_gateway(database_url, tmp_path, vendor, **settings) as gw:
        first = generate(gw)
        await vendor.called.wait()
        second = generate(gw)
        while await direct_jobs(gw, "queued") < 1:  # the gate refused it a lease: put back
            await asyncio.sleep(0.01)
        assert vendor.submits == 1 and not second.done()
        vendor.open.set()
        assert (await first).status_code == 200
        await gw.drain()  # a worker takes the job that was put back
        assert (await second).status_code == 200
        assert vendor.most_in_flight == 1 and vendor.submits == 2
        assert await direct_jobs(gw, "completed") == 1
        # The call its submit recorded in flight was never made: putting it back cleared that.
        async with gw.runtime.db.read() as conn:
            jobs = await job_store.list_jobs(conn, gw.account_id, limit=10)
        assert [job.interrupted_calls for job in jobs] == [0, 0]
        for job in jobs:
            assert "interrupted_call" not in await event_kinds(gw, job.id)


async def leases(gw: Gateway) -> list[str | None]:
    """The job id of every provider lease held."""
    async with gw.runtime.db.read() as conn:
        return [row.job_id for row in await conn.execute(select(provider_leases))]


async def test_a_call_that_returns_hands_its_lease_to_the_call_waiting_for_one(
    database_url: str, tmp_path: Path
) -> None:
    vendor = HeldVendor()
    vendor.open.clear()
    settings: dict[str, Any] = {
        "providers": {"held": {"max_concurrency": 1}},
        "provider_wait_seconds": 10.0,
    }
    async with direct_gateway(database_url, tmp_path, vendor, **settings) as gw:
        first = generate(gw)
        await vendor.called.wait()
        [first_job] = await leases(gw)
        second = generate(gw)
        await asyncio.sleep(0.3)  # the second call waits for the one lease
        assert vendor.submits == 1
        vendor.open.set()  # lets the first call (only) return
        vendor.open.clear()
        assert (await first).status_code == 200
        while vendor.submits < 2:
            await asyncio.sleep(0.01)
        assert await leases(gw) == [first_job]  # the same lease, never given back meanwhile
        vendor.open.set()
        assert (await second).status_code == 200
        assert vendor.most_in_flight == 1
        assert await direct_jobs(gw, "completed") == 2
        while await leases(gw):  # given back once the second call returned
            await asyncio.sleep(0.01)


async def test_the_submit_writes_the_job_claimed_and_only_its_completion_updates_it(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The job row is inserted already leased, not inserted QUEUED and claimed by an update in
    the same transaction (its row, indexes and counts written twice)."""
    with contextlib.closing(sqlite3.connect(sqlite_url.removeprefix("sqlite+aiosqlite:///"))) as db:
        db.executescript(
            "CREATE TABLE job_updates (old_status TEXT, new_status TEXT);"
            "CREATE TRIGGER record_job_updates AFTER UPDATE ON jobs BEGIN "
            "INSERT INTO job_updates VALUES (old.status, new.status); END;"
        )
    async with direct_gateway(sqlite_url, tmp_path, HeldVendor()) as gw:
        assert (await generate(gw)).status_code == 200
        async with gw.runtime.db.read() as conn:
            updates = (await conn.execute(text("SELECT * FROM job_updates"))).all()
        job = await only_job(gw)
        events = await event_kinds(gw, job.id)

    assert [tuple(row) for row in updates] == [("PROCESSING", "COMPLETED")]
    assert job.started_at == job.created_at
    assert events == ["queued", "stored", "completed"]


async def test_caps_and_credits_are_counted_as_for_any_submit(
    database_url: str, tmp_path: Path
) -> None:
    vendor = HeldVendor()
    vendor.open.clear()
    async with direct_gateway(database_url, tmp_path, vendor, credits=COST + 1) as gw:
        await account_service.set_account_limits(
            gw.runtime.db, gw.account_id, {"max_concurrent_jobs": 1}
        )
        first = generate(gw)
        await vendor.called.wait()
        refused = await generate(gw)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "concurrent_jobs_limit"
        vendor.open.set()
        assert (await first).status_code == 200
        poor = await generate(gw)
        assert poor.status_code == 402
        assert poor.json()["error"]["code"] == "insufficient_credits"
        assert await gw.balance() == 1
        assert await ledger_matches_balance(gw)
        assert vendor.submits == 1


async def test_a_cancel_during_the_call_refunds_and_the_call_answers_cancelled(
    database_url: str, tmp_path: Path
) -> None:
    vendor = HeldVendor()
    vendor.open.clear()
    async with direct_gateway(database_url, tmp_path, vendor) as gw:
        before = await gw.balance()
        call = generate(gw)
        await vendor.called.wait()
        job = await only_job(gw)
        cancelled = await gw.http.post(f"/v2/jobs/{job.id}/cancel", headers=gw.headers())
        assert cancelled.status_code == 200, cancelled.text
        vendor.open.set()  # the answer arrives after the cancel: its writes are fenced off
        response = await call
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "job_cancelled"
        job = await only_job(gw)
        assert job.status == "CANCELLED" and not job.outputs
        assert await gw.balance() == before
        assert await ledger_matches_balance(gw)


async def test_a_process_dying_mid_call_leaves_the_job_to_any_worker(
    database_url: str, tmp_path: Path
) -> None:
    vendor = HeldVendor()
    vendor.open.clear()
    async with direct_gateway(database_url, tmp_path, vendor) as gw:
        before = await gw.balance()
        call = generate(gw)
        await vendor.called.wait()
        job = await only_job(gw)
        assert job.status == "PROCESSING" and job.lease_owner == "api-process"
        assert job.call_started_at is not None
        # The process dies: its step stops where it is, nothing more is written, no heartbeat.
        [step] = [task for task in asyncio.all_tasks() if task.get_name() == f"job-{job.id}"]
        step.cancel()
        vendor.open.set()
        gw.clock.advance(gw.runtime.settings.lease_seconds + 1)
        await gw.drain()  # another worker: the lease expired, the cut-off call is resubmitted
        job = await only_job(gw)
        assert job.status == "COMPLETED" and job.interrupted_calls == 1
        assert "interrupted_call" in await event_kinds(gw, job.id)
        assert vendor.submits == 2
        assert before - await gw.balance() == COST
        assert (await call).status_code == 200  # the request saw the job finish elsewhere


async def submit_and_die(gw: Gateway, key: str) -> JobRow:
    """A ``/v1`` submit whose process dies right after its transaction commits: the job is
    written claimed by the API process's worker, and nothing runs it."""
    assert gw.runtime.local_worker is not None
    caller = await account_service.authenticate(gw.runtime.db, key)
    body = {"model": BODY["model"], "prompt": BODY["prompt"], "gptImageParams": {"quality": "low"}}
    claim = gw.runtime.local_worker.new_claim()
    accepted = await gw.runtime.submitter.generate(caller, body, None, claim=claim)
    assert accepted.claimed is not None
    return accepted.claimed


async def test_the_submit_records_the_paid_call_so_dying_before_it_counts_as_interrupted(
    database_url: str, tmp_path: Path
) -> None:
    vendor = HeldVendor()
    async with direct_gateway(database_url, tmp_path, vendor) as gw:
        before = await gw.balance()
        claimed = await submit_and_die(gw, gw.live_key)
        job = await only_job(gw)
        assert job.lease_owner == "api-process"
        assert job.call_started_at is not None and job.call_started_at == claimed.call_started_at
        gw.clock.advance(gw.runtime.settings.lease_seconds + 1)
        await gw.drain()  # the takeover cannot know whether the call was made: resubmitted once
        job = await only_job(gw)
        assert job.status == "COMPLETED" and job.interrupted_calls == 1
        assert job.call_started_at is None
        assert "interrupted_call" in await event_kinds(gw, job.id)
        assert vendor.submits == 1
        assert before - await gw.balance() == COST
        assert await ledger_matches_balance(gw)


async def test_under_the_fail_policy_dying_after_the_submit_fails_the_job_refunded(
    database_url: str, tmp_path: Path
) -> None:
    vendor = HeldVendor()
    async with direct_gateway(database_url, tmp_path, vendor, interrupted_calls="fail") as gw:
        before = await gw.balance()
        await submit_and_die(gw, gw.live_key)
        gw.clock.advance(gw.runtime.settings.lease_seconds + 1)
        await gw.drain()
        job = await only_job(gw)
        assert job.status == "FAILED" and job.error_code == "interrupted_call"
        assert vendor.submits == 0
        assert await gw.balance() == before
        assert await ledger_matches_balance(gw)


async def test_a_test_key_job_records_no_paid_call(database_url: str, tmp_path: Path) -> None:
    vendor = HeldVendor()
    async with direct_gateway(database_url, tmp_path, vendor) as gw:
        claimed = await submit_and_die(gw, gw.test_key)
        assert claimed.call_started_at is None
        gw.clock.advance(gw.runtime.settings.lease_seconds + 1)
        await gw.drain()  # the sandbox renders it; nothing was cut off
        job = await only_job(gw)
        assert job.status == "COMPLETED" and job.interrupted_calls == 0
        assert vendor.submits == 0


def generate_and_wait(gw: Gateway, key: str, prefer: str) -> asyncio.Task[httpx2.Response]:
    body = {"model": BODY["model"], "prompt": BODY["prompt"], "gptImageParams": {"quality": "low"}}
    headers = {"X-API-Key": key, "Prefer": prefer}
    return asyncio.create_task(gw.http.post("/v2/images/generate", json=body, headers=headers))


async def test_prefer_wait_runs_the_job_in_the_request_and_answers_it_finished(
    database_url: str, tmp_path: Path
) -> None:
    vendor = HeldVendor()
    async with direct_gateway(database_url, tmp_path, vendor) as gw:
        before = await gw.balance()
        response = await generate_and_wait(gw, gw.live_key, "wait=10")
        assert response.status_code == 200, response.text
        assert response.headers["Preference-Applied"] == "wait=10"
        body = response.json()
        assert body["status"] == "COMPLETED"
        assert body == await gw.job(body["id"], key=gw.live_key)
        job = await only_job(gw)
        assert job.lease_owner is None and job.call_started_at is None
        assert await event_kinds(gw, job.id) == ["queued", "stored", "completed"]
        assert vendor.submits == 1
        assert before - await gw.balance() == COST
        assert await direct_jobs(gw, "completed") == 1
        sandbox = await generate_and_wait(gw, gw.test_key, "wait=10")  # the sandbox, in place
        assert sandbox.status_code == 200 and sandbox.json()["status"] == "COMPLETED"


async def test_prefer_wait_past_its_time_answers_202_and_the_job_goes_on(
    database_url: str, tmp_path: Path
) -> None:
    vendor = HeldVendor()
    vendor.open.clear()
    async with direct_gateway(database_url, tmp_path, vendor) as gw:
        response = await generate_and_wait(gw, gw.live_key, "wait=1")
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "PROCESSING"
        job = await only_job(gw)
        [step] = [task for task in asyncio.all_tasks() if task.get_name() == f"job-{job.id}"]
        vendor.open.set()  # the call goes on in the worker's task and completes the job
        assert await step is not None
        job = await only_job(gw)
        assert job.status == "COMPLETED" and job.interrupted_calls == 0
        assert vendor.submits == 1


async def test_without_prefer_wait_the_job_is_left_to_the_queue(
    database_url: str, tmp_path: Path
) -> None:
    vendor = HeldVendor()
    async with direct_gateway(database_url, tmp_path, vendor) as gw:
        response = await generate_and_wait(gw, gw.live_key, "respond-async")
        assert response.status_code == 202, response.text
        job = await only_job(gw)
        assert job.status == "QUEUED" and job.lease_token is None
        assert job.call_started_at is None and vendor.submits == 0
