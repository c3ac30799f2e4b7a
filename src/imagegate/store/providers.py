"""Provider slots and health rows: what every worker process shares about each upstream."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.store.tables import provider_health, provider_slots
from imagegate.types import Millis

__all__ = [
    "Health",
    "ensure_provider",
    "get_health",
    "list_health",
    "release_slot",
    "save_health",
    "take_slot",
]


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


async def get_health(conn: AsyncConnection, provider: str, *, lock: bool = False) -> Health:
    query = select(provider_health).where(provider_health.c.provider == provider)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return _health(row) if row is not None else Health(provider)


async def list_health(conn: AsyncConnection) -> list[Health]:
    rows = await conn.execute(select(provider_health).order_by(provider_health.c.provider))
    return [_health(row) for row in rows]


async def save_health(conn: AsyncConnection, health: Health, now: Millis) -> None:
    await conn.execute(
        update(provider_health)
        .where(provider_health.c.provider == health.provider)
        .values(
            failures=health.failures,
            open_until=health.open_until,
            cooldown_until=health.cooldown_until,
            window_start=health.window_start,
            window_count=health.window_count,
            misconfigured=health.misconfigured,
            updated_at=now,
        )
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
