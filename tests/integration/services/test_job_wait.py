"""``JobService.wait``: the one way a synchronous answer waits for a job to finish."""

from __future__ import annotations

import asyncio
import time

from imagegate.services.accounts import authenticate
from tests.integration.conftest import Gateway

BODY = {"model": "gpt-image-1.5", "prompt": "a lighthouse"}


async def test_wait_returns_the_job_as_it_stands_when_the_time_is_up(gateway: Gateway) -> None:
    job_id = (await gateway.submit(BODY)).json()["jobId"]
    caller = await authenticate(gateway.runtime.db, gateway.test_key)

    started = time.monotonic()
    job = await gateway.runtime.jobs.wait(caller, job_id, timeout=0.3)

    assert job.status == "QUEUED"
    assert 0.3 <= time.monotonic() - started < 2


async def test_wait_returns_the_finished_job_as_soon_as_it_ends(gateway: Gateway) -> None:
    job_id = (await gateway.submit(BODY)).json()["jobId"]
    caller = await authenticate(gateway.runtime.db, gateway.test_key)

    waiting = asyncio.create_task(gateway.runtime.jobs.wait(caller, job_id, timeout=30))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await gateway.drain()
    job = await asyncio.wait_for(waiting, 5)

    assert job.status == "COMPLETED"
