"""Provider concurrency caps as leases: one row per call in flight, never one per slot."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import inspect

from imagegate.queue.gates import Circuit, DatabaseGateState, Outcome, ProviderBusy
from imagegate.store import providers as store
from imagegate.store.db import Database
from tests.conftest import count_rows

NOW = 1_800_000_000_000
HOLD_MS = 60_000


@contextlib.contextmanager
def counting_writes(db: Database) -> Iterator[Callable[[], int]]:
    """Count the write transactions ``db`` runs meanwhile (``transaction()``, ``write()`` and
    ``write_alone()``)."""
    count = 0
    transaction, write, write_alone = db.transaction, db.write, db.write_alone

    def counted_transaction() -> object:
        nonlocal count
        count += 1
        return transaction()

    async def counted_write(body: Any) -> Any:
        nonlocal count
        count += 1
        return await write(body)

    async def counted_write_alone(body: Any) -> Any:
        nonlocal count
        count += 1
        return await write_alone(body)

    db.transaction = counted_transaction  # type: ignore[method-assign]
    db.write = counted_write  # type: ignore[method-assign]
    db.write_alone = counted_write_alone  # type: ignore[method-assign]
    try:
        yield lambda: count
    finally:
        del db.transaction, db.write, db.write_alone


async def take(state: DatabaseGateState, cap: int, now: int = NOW) -> str | None:
    try:
        return await state.acquire("alpha", now, rate_limit=None, cap=cap, hold_ms=HOLD_MS)
    except ProviderBusy:
        return None


async def test_the_cap_holds_exactly_when_many_holders_race(db: Database) -> None:
    holders = [DatabaseGateState(db) for _ in range(8)]  # eight worker processes, say
    tickets = await asyncio.gather(*(take(holders[n % 8], cap=5) for n in range(60)))
    assert sum(ticket is not None for ticket in tickets) == 5
    assert await count_rows(db, "provider_leases") == 5
    async with db.read() as conn:
        assert await store.leases_held(conn, "alpha", NOW) == 5


async def test_a_released_lease_is_free_at_once(db: Database) -> None:
    state = DatabaseGateState(db)
    ticket = await take(state, cap=1)
    assert ticket is not None
    assert await take(state, cap=1) is None
    await state.release("alpha", ticket, NOW, Outcome("none"), circuit=Circuit(5, 1000))
    assert await count_rows(db, "provider_leases") == 0
    assert await take(state, cap=1) is not None


async def test_a_dead_holders_lease_expires_and_is_reused(db: Database) -> None:
    dead, alive = DatabaseGateState(db), DatabaseGateState(db)
    assert await take(dead, cap=1) is not None  # and its process dies without releasing
    assert await take(alive, cap=1, now=NOW + HOLD_MS - 1) is None
    assert await take(alive, cap=1, now=NOW + HOLD_MS + 1) is not None
    assert await count_rows(db, "provider_leases") == 1  # the dead lease was deleted


async def test_a_huge_cap_costs_no_row_per_slot(db: Database) -> None:
    state = DatabaseGateState(db)
    tickets = [await take(state, cap=100_000) for _ in range(3)]
    assert all(ticket is not None for ticket in tickets)
    assert await count_rows(db, "provider_leases") == 3
    async with db.read() as conn:
        tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    assert "provider_slots" not in tables


async def test_successful_calls_give_their_leases_back_together(db: Database) -> None:
    """Forty calls that succeed at once: every lease is gone when each caller is answered,
    the provider's failure count is cleared, and it took far fewer writes than calls."""
    state = DatabaseGateState(db)
    circuit = Circuit(5, 1000)
    tickets = [await take(state, cap=100) for _ in range(40)]
    failed = await take(state, cap=100)
    assert failed is not None
    await state.release("alpha", failed, NOW, Outcome("failure"), circuit=circuit)
    with counting_writes(db) as writes:
        await asyncio.gather(
            *(
                state.release("alpha", t, NOW, Outcome("success"), circuit=circuit)
                for t in tickets
                if t is not None
            )
        )
    assert await count_rows(db, "provider_leases") == 0
    async with db.read() as conn:
        assert (await store.get_health(conn, "alpha")).failures == 0
    assert 1 <= writes() <= 2


async def test_leases_taken_together_still_respect_the_cap(db: Database) -> None:
    """Sixty calls of three processes ask at once: the leases come in a few writes, five of
    them, and the fifty-five others are told the provider is busy."""
    holders = [DatabaseGateState(db) for _ in range(3)]
    with counting_writes(db) as writes:
        tickets = await asyncio.gather(*(take(holders[n % 3], cap=5) for n in range(60)))
    assert sum(ticket is not None for ticket in tickets) == 5
    assert await count_rows(db, "provider_leases") == 5
    # The providers' rows (one each), then a round or two per process; a loaded machine may
    # split a burst into a few more rounds, never into anything near one write per call.
    assert 3 <= writes() <= 20
