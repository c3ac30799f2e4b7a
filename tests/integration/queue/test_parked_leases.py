"""A lease of a call that returned well is kept a moment for the process's next call.

Calls one after another then take one lease and give it back once, instead of two writes each;
a lease too old to outlive another call, or one of a provider with a rate limit, is never kept.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import select

from imagegate.queue.gates import HANDOVER_MS, PARK_SECONDS, DatabaseGateState, ProviderGates
from imagegate.settings import Settings
from imagegate.store.db import Database
from imagegate.store.tables import provider_leases
from imagegate.testing.clock import FakeClock
from tests.integration.queue.test_provider_leases import counting_writes


def gates_for(db: Database, clock: FakeClock, **provider: object) -> ProviderGates:
    settings = Settings(providers={"alpha": {"api_key": "k", **provider}})
    return ProviderGates(DatabaseGateState(db), clock, settings)


async def leases(db: Database) -> list[str | None]:
    """The job id of every lease held."""
    async with db.read() as conn:
        return [row.job_id for row in await conn.execute(select(provider_leases))]


async def given_back(db: Database) -> bool:
    """Whether every lease is given back within a second (a parked one after PARK_SECONDS)."""
    give_up = time.monotonic() + 1.0
    while await leases(db):
        if time.monotonic() > give_up:
            return False
        await asyncio.sleep(PARK_SECONDS / 5)
    return True


async def test_calls_one_after_another_share_one_lease(db: Database) -> None:
    gates = gates_for(db, FakeClock())
    async with gates.call("alpha", "job-0"):  # the provider's row is made once, not counted
        pass
    assert await given_back(db)
    with counting_writes(db) as writes:
        async with gates.call("alpha", "job-1"):
            pass
        async with gates.call("alpha", "job-2"):
            assert await leases(db) == ["job-1"]  # the first call's lease, kept for this one
        assert await leases(db) == ["job-1"]  # kept again, for a next call
        assert await given_back(db)
    assert writes() == 2  # one take, one give-back, for two calls
    await gates.aclose()


async def test_a_lease_too_old_for_another_call_is_given_back_not_kept(db: Database) -> None:
    clock = FakeClock()
    gates = gates_for(db, clock)
    async with gates.call("alpha", "job-1"):
        pass
    clock.advance(HANDOVER_MS / 1000)  # the next call could outlive the lease
    async with gates.call("alpha", "job-2"):
        assert "job-2" in await leases(db)  # a new lease (the old one may still be going back)
    assert await given_back(db)
    await gates.aclose()


async def test_a_provider_with_a_rate_limit_keeps_no_lease(db: Database) -> None:
    gates = gates_for(db, FakeClock(), rate_per_minute=100)
    async with gates.call("alpha", "job-1"):
        pass
    async with gates.call("alpha", "job-2"):
        assert "job-2" in await leases(db)  # a new lease, counted in the rate window
    await gates.aclose()
    assert await leases(db) == []


async def test_closing_the_gates_gives_kept_leases_back_at_once(db: Database) -> None:
    gates = gates_for(db, FakeClock())
    async with gates.call("alpha", "job-1"):
        pass
    assert await leases(db) == ["job-1"]
    await gates.aclose()
    assert await leases(db) == []
