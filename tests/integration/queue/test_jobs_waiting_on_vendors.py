"""Jobs waiting on their vendor, many at once: what each keeps alive while it waits.

Every object a waiting job's await chain keeps (the runner's frames, the HTTP client stack, its
task, closures and contexts) is one more for Python's garbage collector to walk, with the event
loop stopped: a full collection walks them all, and while jobs pile up each collection of the
middle generation walks those kept since the one before (``bench/notes.md``, ``## inflight``).
So the count is pinned here, counted rather than timed."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.integration.conftest import Gateway, open_gateway

HELD = 200
"""Jobs put in flight at once (beside one that warms the client up)."""

OBJECTS_PER_JOB = 130
"""Objects the collector tracks per job waiting on a synchronous vendor (OpenAI) through aiohttp.
Measured with 200 jobs: 154 on SQLite and 145 on PostgreSQL with a wrapper task per job, lambdas
in the runner's step and httpx2's auth flow on every call; 117 and 109 without them. aiohttp's
own share (its request coroutine and closure, timers, headers, the connection) is ~45."""

BODY = {"model": "gpt-image-1.5", "prompt": "a lighthouse", "gptImageParams": {"quality": "low"}}


class HeldVendor:
    """``held_vendor.py`` in a process of its own; ``held`` counts the calls it keeps waiting."""

    def __init__(self) -> None:
        script = Path(__file__).with_name("held_vendor.py")
        self.process = subprocess.Popen(
            [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline().split()[1])
        self.held = 0

    async def until_held(self, count: int) -> None:
        assert self.process.stdout is not None
        while self.held < count:
            line = await asyncio.to_thread(self.process.stdout.readline)
            assert line.startswith("held "), line
            self.held = int(line.split()[1])

    def release(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("answer\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        self.process.kill()
        self.process.communicate()


@pytest.fixture
def vendor() -> Iterator[HeldVendor]:
    held = HeldVendor()
    try:
        yield held
    finally:
        held.stop()


@pytest.fixture
async def gateway(database_url: str, tmp_path: Path, vendor: HeldVendor) -> AsyncIterator[Gateway]:
    openai = {
        "api_key": "sk-held",
        "base_url": f"http://127.0.0.1:{vendor.port}/v1",
        "max_concurrency": HELD + 1,
    }
    async with open_gateway(
        database_url,
        tmp_path / "data",
        credits=100_000,
        providers={"openai": openai},
        routes={"gpt-image-1.5": ["openai:gpt-image-1.5"]},
        allow_substitutes=False,
    ) as gw:
        yield gw


async def submit(gw: Gateway, count: int) -> None:
    for _ in range(count):
        response = await gw.submit(BODY, key=gw.live_key)
        assert response.status_code == 202, response.text


async def completed(gw: Gateway) -> int:
    async with gw.runtime.db.read() as conn:
        done = await conn.scalar(text("SELECT count(*) FROM jobs WHERE status = 'COMPLETED'"))
    return int(done or 0)


def tracked() -> int:
    gc.collect()
    return len(gc.get_objects())


async def test_a_job_waiting_on_its_vendor_keeps_few_objects_for_the_collector(
    gateway: Gateway, vendor: HeldVendor
) -> None:
    worker = gateway.runtime.worker(concurrency=HELD + 1)
    running = asyncio.create_task(worker.run())
    try:
        await submit(gateway, 1)  # its call opens the vendor's session and pool
        await vendor.until_held(1)
        before = tracked()
        await submit(gateway, HELD)
        await vendor.until_held(1 + HELD)
        per_job = (tracked() - before) / HELD
        assert per_job <= OBJECTS_PER_JOB
        vendor.release()
        for _ in range(400):
            if await completed(gateway) == 1 + HELD:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the held jobs did not complete once the vendor answered")
    finally:
        worker.stop()
        await running
