"""Provider slots and health rows: what every worker process shares about each upstream."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.store.tables import provider_health, provider_slots
from imagegate.types import Millis

__all__ = [
    "WINDOW_MS",
    "Health",
    "count_call",
    "ensure_provider",
    "get_health",
    "list_health",
    "record_cooldown",
    "record_failure",
    "record_misconfigured",
    "record_success",
    "release_slot",
    "take_slot",
]

WINDOW_MS = 60_000
"""The rate-limit window: ``rate_per_minute`` calls per provider per minute."""


@dataclass
class Health:
    provider: str
    failures: int = 0
    open_until: Millis = 0
    cooldown_until: Millis = 0
    window_start: Millis = 0
    window_count: int = 0
    misconfigured: str | None = None


def _insert(conn: AsyncConnection, table: object) -> postgresql.Insert | sqlite.Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)  # type: ignore[arg-type]
    return sqlite.insert(table)  # type: ignore[arg-type]


async def ensure_provider(conn: AsyncConnection, provider: str, slots: int) -> None:
    """Create the provider's health row and ``slots`` slot rows when they are missing."""
    await conn.execute(
        _insert(conn, provider_health).values(provider=provider).on_conflict_do_nothing()
    )
    await conn.execute(
        _insert(conn, provider_slots)
        .values([{"provider": provider, "slot": n} for n in range(slots)])
        .on_conflict_do_nothing()
    )


def _health(row: object) -> Health:
    mapping = row._mapping  # type: ignore[attr-defined]
    return Health(
        provider=mapping["provider"],
        failures=mapping["failures"],
        open_until=mapping["open_until"],
        cooldown_until=mapping["cooldown_until"],
        window_start=mapping["window_start"],
        window_count=mapping["window_count"],
        misconfigured=mapping["misconfigured"],
    )


async def get_health(conn: AsyncConnection, provider: str) -> Health:
    query = select(provider_health).where(provider_health.c.provider == provider)
    row = (await conn.execute(query)).first()
    return _health(row) if row is not None else Health(provider)


async def list_health(conn: AsyncConnection) -> list[Health]:
    rows = await conn.execute(select(provider_health).order_by(provider_health.c.provider))
    return [_health(row) for row in rows]


# Each write below is one conditional UPDATE, so concurrent workers never read-modify-write.


async def count_call(conn: AsyncConnection, provider: str, now: Millis, limit: int) -> bool:
    """Count one call in the current one-minute window; False when the window is full."""
    health = provider_health.c
    new_window = now - health.window_start >= WINDOW_MS
    result = await conn.execute(
        update(provider_health)
        .where(health.provider == provider, or_(new_window, health.window_count < limit))
        .values(
            window_start=case((new_window, now), else_=health.window_start),
            window_count=case((new_window, 1), else_=health.window_count + 1),
        )
    )
    return result.rowcount == 1


async def record_success(conn: AsyncConnection, provider: str, now: Millis) -> None:
    health = provider_health.c
    await conn.execute(
        update(provider_health)
        .where(
            health.provider == provider,
            or_(health.failures > 0, health.open_until > 0, health.misconfigured.is_not(None)),
        )
        .values(failures=0, open_until=0, misconfigured=None, updated_at=now)
    )


async def record_failure(
    conn: AsyncConnection,
    provider: str,
    now: Millis,
    *,
    threshold: int,
    open_ms: int,
    cooldown_until: Millis | None = None,
) -> None:
    """One more retryable failure in a row; the ``threshold``-th opens the circuit."""
    health = provider_health.c
    values: dict[str, object] = {
        "failures": health.failures + 1,
        "open_until": case(
            (health.failures + 1 >= threshold, now + open_ms), else_=health.open_until
        ),
        "updated_at": now,
    }
    if cooldown_until is not None:
        values["cooldown_until"] = cooldown_until
    await conn.execute(update(provider_health).where(health.provider == provider).values(**values))


async def record_cooldown(conn: AsyncConnection, provider: str, now: Millis, until: Millis) -> None:
    """The provider asked us to wait (429) until ``until``; a longer wait already set stays."""
    health = provider_health.c
    await conn.execute(
        update(provider_health)
        .where(health.provider == provider, health.cooldown_until < until)
        .values(cooldown_until=until, updated_at=now)
    )


async def record_misconfigured(
    conn: AsyncConnection, provider: str, now: Millis, message: str
) -> None:
    await conn.execute(
        update(provider_health)
        .where(provider_health.c.provider == provider)
        .values(misconfigured=message, updated_at=now)
    )


async def take_slot(
    conn: AsyncConnection, provider: str, cap: int, holder: str, now: Millis, hold_ms: int
) -> int | None:
    """Hold a free (or abandoned) slot below ``cap``; ``None`` when all are busy."""
    free = (
        select(provider_slots.c.slot)
        .where(
            provider_slots.c.provider == provider,
            provider_slots.c.slot < cap,
            or_(provider_slots.c.holder.is_(None), provider_slots.c.expires_at < now),
        )
        .order_by(provider_slots.c.slot)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    slot = (await conn.execute(free)).scalar()
    if slot is None:
        return None
    await conn.execute(
        update(provider_slots)
        .where(provider_slots.c.provider == provider, provider_slots.c.slot == slot)
        .values(holder=holder, expires_at=now + hold_ms)
    )
    return int(slot)


async def release_slot(conn: AsyncConnection, provider: str, slot: int, holder: str) -> None:
    await conn.execute(
        update(provider_slots)
        .where(
            and_(
                provider_slots.c.provider == provider,
                provider_slots.c.slot == slot,
                provider_slots.c.holder == holder,
            )
        )
        .values(holder=None, expires_at=0)
    )
