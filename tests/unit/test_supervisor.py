"""The supervisor restarts a crashed loop within its budget and gives up past it; outages log
their start and end once."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from imagegate.supervisor import LoopHealth, LoopsFailed, Outage, Supervisor

pytestmark = pytest.mark.timeout(10)


async def test_a_loop_that_raises_is_restarted_and_keeps_running() -> None:
    runs = 0
    finish = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise RuntimeError("boom")
        await finish.wait()

    health = LoopHealth()
    supervisor = Supervisor(health, budget=3, window_seconds=60, backoff_seconds=0.01)
    supervisor.start("flaky", flaky)
    while runs < 3:
        await asyncio.sleep(0.01)
    assert health.states() == {"flaky": "running"}
    assert supervisor.restarts["flaky"] == 2
    finish.set()
    await supervisor.wait()
    assert health.states() == {}
    assert not health.failed.is_set()


async def test_a_loop_past_its_restart_budget_fails_the_process() -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("always")

    async def steady() -> None:
        await asyncio.sleep(3600)

    health = LoopHealth()
    supervisor = Supervisor(health, budget=2, window_seconds=60, backoff_seconds=0.01)
    supervisor.start("broken", broken)
    supervisor.start("steady", steady)
    with pytest.raises(LoopsFailed, match="broken"):
        await supervisor.wait()
    assert calls == 3  # the first run and two restarts
    assert health.problems() == {"broken": "failed"}
    assert health.failed.is_set()
    for task in supervisor._tasks:
        task.cancel()
    await supervisor.join()


async def test_crashes_older_than_the_window_do_not_count_against_the_budget() -> None:
    calls = 0

    async def slow_crasher() -> None:
        nonlocal calls
        calls += 1
        if calls < 5:
            await asyncio.sleep(0.06)
            raise RuntimeError("now and then")

    health = LoopHealth()
    supervisor = Supervisor(health, budget=1, window_seconds=0.05, backoff_seconds=0.001)
    supervisor.start("slow", slow_crasher)
    await supervisor.wait()
    assert calls == 5
    assert not health.failed.is_set()


def test_an_outage_logs_its_start_and_its_end_once_and_backs_off_to_its_cap() -> None:
    health = LoopHealth()
    health.set("sender", "running")
    outage = Outage("sender", health=health, initial=0.1, cap=0.4)
    with capture_logs() as logs:
        delays = [outage.failed(ConnectionError("down")) for _ in range(5)]
        assert health.problems() == {"sender": "outage"}
        outage.recovered()
        outage.recovered()
    assert delays == [0.1, 0.2, 0.4, 0.4, 0.4]
    assert [e["event"] for e in logs] == ["loop.outage_started", "loop.outage_ended"]
    assert logs[1]["retries"] == 5
    assert health.problems() == {}
