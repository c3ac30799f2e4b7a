"""The worker against real databases: retries, heartbeats, lease loss, shutdown, wake-up."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from imagegate.errors import UpstreamModerated, UpstreamRetryable
from imagegate.providers.port import (
    Finished,
    GenerationRequest,
    OutputImage,
    Pending,
    Submitted,
    TaskHandle,
)
from imagegate.queue.wakeup import PostgresListener, Wakeup
from imagegate.store import jobs as job_store
from tests.conftest import _truncate_pg
from tests.images import image_bytes
from tests.integration.conftest import Gateway, open_gateway
from tests.integration.queue.conftest import statements_sent


class ScriptedAdapter:
    """An upstream whose answers a test scripts: one entry per call, then it finishes."""

    name = "scripted"
    supports_cancel = True

    def __init__(self, script: list[Any] | None = None, delay: float = 0.0) -> None:
        self.script = list(script or [])
        self.delay = delay
        self.submits = 0
        self.polls = 0
        self.cancels: list[str] = []

    async def _next(self) -> Any:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        return Finished(images=[OutputImage(data=image_bytes((8, 8), "red"))])

    async def submit(self, request: GenerationRequest) -> Submitted | Finished:
        self.submits += 1
        result: Submitted | Finished = await self._next()
        return result

    async def poll(self, request: GenerationRequest, task: TaskHandle) -> Pending | Finished:
        self.polls += 1
        result: Pending | Finished = await self._next()
        return result

    async def cancel(self, request: GenerationRequest, task: TaskHandle) -> None:
        self.cancels.append(task.task_id)

    async def aclose(self) -> None:
        pass


ROUTES = {"gpt-image-1.5": ["scripted:model-x"]}
BODY = {"model": "gpt-image-1.5", "prompt": "p", "gptImageParams": {"quality": "low"}}


@contextlib.asynccontextmanager
async def scripted_gateway(
    database_url: str, tmp_path: Path, adapter: ScriptedAdapter, **settings: Any
) -> AsyncIterator[Gateway]:
    async with open_gateway(
        database_url, tmp_path, routes=ROUTES, adapters={"scripted": adapter}, **settings
    ) as gw:
        yield gw


async def submit(gw: Gateway) -> str:
    response = await gw.submit(BODY, key=gw.live_key)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["jobId"]
    return job_id


async def test_async_task_is_polled_until_done_and_records_provider(
    database_url: str, tmp_path: Path
) -> None:
    adapter = ScriptedAdapter(
        [Submitted("task-1", {"u": 1}, poll_after=5), Pending(30, 5), Pending(60, 5)]
    )
    async with scripted_gateway(database_url, tmp_path, adapter) as gw:
        job_id = await submit(gw)
        await gw.drain()
        job = await gw.job(job_id, key=gw.live_key)
        assert job["status"] == "COMPLETED"
        assert job["servedBy"] == {"provider": "scripted", "model": "model-x"}
        assert (adapter.submits, adapter.polls) == (1, 3)
        async with gw.runtime.db.read() as conn:
            events = [e["kind"] for e in await job_store.list_events(conn, job_id)]
        assert events == ["queued", "submitted", "progress", "progress", "stored", "completed"]


async def test_transient_failures_are_retried_then_succeed(
    database_url: str, tmp_path: Path
) -> None:
    adapter = ScriptedAdapter([UpstreamRetryable("busy", retry_after=1), UpstreamRetryable("busy")])
    async with scripted_gateway(database_url, tmp_path, adapter) as gw:
        job_id = await submit(gw)
        await gw.drain()
        assert (await gw.job(job_id, key=gw.live_key))["status"] == "COMPLETED"
        assert adapter.submits == 3
        assert await gw.balance() == 996


async def test_retries_are_bounded_and_the_job_is_refunded(
    database_url: str, tmp_path: Path
) -> None:
    adapter = ScriptedAdapter([UpstreamRetryable("down")] * 10)
    async with scripted_gateway(database_url, tmp_path, adapter, max_attempts=3) as gw:
        job_id = await submit(gw)
        await gw.drain()
        job = await gw.job(job_id, key=gw.live_key)
        assert job["status"] == "FAILED"
        assert "gave up after 3 attempts" in job["error"]
        assert adapter.submits == 3
        assert await gw.balance() == 1000


async def test_moderation_is_not_retried(database_url: str, tmp_path: Path) -> None:
    adapter = ScriptedAdapter([UpstreamModerated()])
    async with scripted_gateway(database_url, tmp_path, adapter) as gw:
        job_id = await submit(gw)
        await gw.drain()
        job = await gw.job(job_id, key=gw.live_key)
        assert job["status"] == "FAILED"
        assert job["error"] == "Provider returned an error: content policy violation"
        assert adapter.submits == 1


async def test_heartbeat_keeps_a_long_step_leased(database_url: str, tmp_path: Path) -> None:
    """A step longer than the lease TTL is renewed, so no second worker takes the job."""
    adapter = ScriptedAdapter(delay=1.2)
    async with scripted_gateway(database_url, tmp_path, adapter, lease_seconds=0.6) as gw:
        from imagegate.types import SystemClock

        gw.runtime.transitions._clock = SystemClock()  # real time: leases must really expire
        job_id = await submit(gw)
        first = gw.runtime.worker(concurrency=1)
        first._clock = SystemClock()
        second = gw.runtime.worker(concurrency=1)
        second._clock = SystemClock()
        running = asyncio.create_task(first.drain())
        await asyncio.sleep(0.9)  # past the TTL: only the heartbeat keeps the lease
        assert await second.claim(5) == []
        await running
        assert adapter.submits == 1
        assert (await gw.job(job_id, key=gw.live_key))["status"] == "COMPLETED"


async def test_a_finished_step_is_not_kept_until_the_next_heartbeat(
    database_url: str, tmp_path: Path
) -> None:
    """A step that finished right after a heartbeat is freed when it ends: the heartbeat holds
    no copy of it while it sleeps (which would free thousands of them in one callback when a
    burst of vendors answers together)."""
    from imagegate.types import SystemClock

    answer = asyncio.Event()

    class AnswersWhenTold(ScriptedAdapter):
        async def submit(self, request: GenerationRequest) -> Submitted | Finished:
            self.submits += 1
            await answer.wait()
            return Finished(images=[OutputImage(data=image_bytes((8, 8), "red"))])

    adapter = AnswersWhenTold()
    async with scripted_gateway(database_url, tmp_path, adapter, lease_seconds=3) as gw:
        job_id = await submit(gw)
        worker = gw.runtime.worker(concurrency=1)
        worker._clock = SystemClock()  # each renewal moves the lease's expiry on
        running = asyncio.create_task(worker.run())

        async def lease_expiry() -> int | None:
            async with gw.runtime.db.read() as conn:
                job = await job_store.get_job(conn, job_id)
            assert job is not None
            return job.lease_expires_at

        for _ in range(250):
            await asyncio.sleep(0.02)
            if adapter.submits:
                break
        claimed = await lease_expiry()
        (step,) = [task for task in asyncio.all_tasks() if task.get_name() == f"job-{job_id}"]
        finished = weakref.ref(step)
        del step
        for _ in range(250):  # a heartbeat renews the lease: one beat every second
            await asyncio.sleep(0.02)
            if await lease_expiry() != claimed:
                break
        # The beat is over and the heartbeat asleep once its renewal's answer is back on the
        # loop, a moment after the renewal can be read: the step ends while it sleeps.
        await asyncio.sleep(0.2)
        answer.set()
        for _ in range(250):
            await asyncio.sleep(0.02)
            step = finished()
            if step is None or step.done():
                break
        del step
        # A host that stalls may leave the beat's answer on its way back to the loop a while
        # longer: allowed 0.3 s more, still well before the next beat, which a copy kept across
        # the heartbeat's sleep would wait for.
        gc.collect()
        deadline = time.monotonic() + 0.3
        while finished() is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            gc.collect()
        assert finished() is None
        assert (await gw.job(job_id, key=gw.live_key))["status"] == "COMPLETED"
        worker.stop()
        await running


async def test_cancel_during_a_step_fences_out_the_worker_and_cancels_upstream(
    database_url: str, tmp_path: Path
) -> None:
    adapter = ScriptedAdapter([Submitted("task-9", poll_after=1), Pending(10, 1)], delay=0.3)
    async with scripted_gateway(database_url, tmp_path, adapter) as gw:
        job_id = await submit(gw)
        worker = gw.runtime.worker(concurrency=1)
        await worker.drain()  # the submit step: task id stored, first poll due in 1 s
        gw.clock.advance(1)
        polling = asyncio.create_task(worker.drain())
        await asyncio.sleep(0.1)  # the poll is in flight upstream
        cancel = await gw.http.post(f"/v2/jobs/{job_id}/cancel", headers=gw.headers(gw.live_key))
        assert cancel.status_code == 200
        await polling  # its late write is fenced out
        await gw.drain()
        job = await gw.job(job_id, key=gw.live_key)
        assert job["status"] == "CANCELLED"
        assert job["result"] is None
        assert job["creditCost"] == 0
        assert adapter.cancels == ["task-9"]
        assert await gw.balance() == 1000


async def test_shutdown_releases_leases_of_unfinished_steps(
    database_url: str, tmp_path: Path
) -> None:
    adapter = ScriptedAdapter(delay=30)
    async with scripted_gateway(database_url, tmp_path, adapter, shutdown_grace_seconds=0.2) as gw:
        job_id = await submit(gw)
        worker = gw.runtime.worker(concurrency=1)
        running = asyncio.create_task(worker.run())
        for _ in range(100):
            await asyncio.sleep(0.02)
            if adapter.submits:
                break
        worker.stop()
        await asyncio.wait_for(running, 5)
        async with gw.runtime.db.read() as conn:
            job = await job_store.get_job(conn, job_id)
        assert job is not None
        assert job.lease_token is None and job.lease_owner is None
        assert job.status == "PROCESSING"


async def test_a_submit_wakes_an_idle_worker_at_once(database_url: str, tmp_path: Path) -> None:
    adapter = ScriptedAdapter()
    async with scripted_gateway(database_url, tmp_path, adapter, poll_interval_seconds=30) as gw:
        worker = gw.runtime.worker(concurrency=1)
        running = asyncio.create_task(worker.run())
        await asyncio.sleep(0.1)  # idle, waiting up to 30 s
        job_id = await submit(gw)
        for _ in range(100):
            await asyncio.sleep(0.02)
            if (await gw.job(job_id, key=gw.live_key))["status"] == "COMPLETED":
                break
        worker.stop()
        await running
        assert (await gw.job(job_id, key=gw.live_key))["status"] == "COMPLETED"


@pytest.mark.postgres
async def test_postgres_notify_reaches_listeners_in_other_processes(pg_database_url: str) -> None:
    import psycopg

    from imagegate.queue.wakeup import CHANNEL

    wakeup = Wakeup()
    listener = PostgresListener(pg_database_url, wakeup)
    listener.start()
    await asyncio.sleep(0.5)
    await wakeup.wait(0.01)  # clear the "connected" signal
    dsn = pg_database_url.replace("postgresql+psycopg", "postgresql")
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(f"NOTIFY {CHANNEL}")
    assert await wakeup.wait(5)
    await listener.stop()


async def test_the_workers_one_statement_writes_commit_by_themselves_on_postgresql(
    pg_database_url: str, tmp_path: Path
) -> None:
    """The claim, a first paid call's mark, the heartbeat and the completion are one statement
    each: on PostgreSQL each is its own transaction (no BEGIN, no COMMIT: one round trip), so
    the rows it locks are never held across a trip of the worker's."""
    _truncate_pg(pg_database_url)
    adapter = ScriptedAdapter(delay=0.5)  # past a heartbeat: every third of the 0.6 s lease
    async with scripted_gateway(pg_database_url, tmp_path, adapter, lease_seconds=0.6) as gw:
        job_id = await submit(gw)
        with statements_sent(gw.runtime.db) as sent:
            await gw.runtime.worker(concurrency=1).drain()
        assert (await gw.job(job_id, key=gw.live_key))["status"] == "COMPLETED"
    claims = sent.alone("FOR UPDATE SKIP LOCKED")  # the job's, then the one that found none
    marks = sent.alone("SET call_started_at = marks.now")
    heartbeats = sent.alone("SET lease_expires_at=")
    assert claims == [True, True]
    assert marks == [True]
    assert heartbeats and all(heartbeats)
    assert sent.alone("complete_job") == [True]
