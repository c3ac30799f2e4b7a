"""A call that finds every lease of its provider held by its own process waits for one of them.

Asking the database for a lease then is a write that cannot succeed: at 32 connections to
``/v1`` with the ``openai`` default cap of 8, nearly every call made one before waiting for a
lease handed over.
"""

from __future__ import annotations

import asyncio

from imagegate.queue.gates import DatabaseGateState, ProviderGates
from imagegate.settings import Settings
from imagegate.store.db import Database
from imagegate.testing.clock import FakeClock
from tests.integration.queue.test_parked_leases import leases
from tests.integration.queue.test_provider_leases import counting_writes


async def test_a_call_waits_for_a_lease_of_its_process_without_a_write(db: Database) -> None:
    settings = Settings(providers={"alpha": {"api_key": "k", "max_concurrency": 2}})
    gates = ProviderGates(DatabaseGateState(db), FakeClock(), settings)
    returned = asyncio.Event()
    calling = [asyncio.Event(), asyncio.Event()]

    async def call(job_id: str, started: asyncio.Event | None = None) -> None:
        async with gates.call("alpha", job_id):
            if started is not None:
                started.set()
                await returned.wait()

    holders = [asyncio.create_task(call(f"job-{n}", calling[n])) for n in range(2)]
    await asyncio.gather(*(started.wait() for started in calling))
    assert sorted(await leases(db)) == ["job-0", "job-1"]
    with counting_writes(db) as writes:
        waiting = asyncio.create_task(call("job-2"))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        assert writes() == 0
    returned.set()
    await asyncio.wait_for(asyncio.gather(waiting, *holders), 5)  # a lease handed over
    await gates.aclose()
    assert await leases(db) == []
