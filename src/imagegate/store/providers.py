"""Provider leases and health rows: what every worker process shares about each upstream."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, case, delete, func, literal, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import BigInteger, String

from imagegate.store.tables import provider_health, provider_leases
from imagegate.types import Millis

__all__ = [
    "WINDOW_MS",
    "Health",
    "count_call",
    "ensure_provider",
    "get_health",
    "leases_held",
    "list_health",
    "record_cooldown",
    "record_failure",
    "record_misconfigured",
    "record_success",
    "release_lease",
    "release_leases",
    "release_succeeded",
    "take_lease",
    "take_leases",
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


async def ensure_provider(conn: AsyncConnection, provider: str) -> None:
    """Create the provider's health row when it is missing."""
    await conn.execute(
        _insert(conn, provider_health).values(provider=provider).on_conflict_do_nothing()
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


async def _lock_leases(conn: AsyncConnection, provider: str, now: Millis) -> None:
    """Before counting ``provider``'s leases: on PostgreSQL lock its health row, so takers of
    the same provider count one after the other (SQLite's one writer already serialises them),
    then delete the expired leases of holders that died, so their places are reused."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            select(provider_health.c.provider)
            .where(provider_health.c.provider == provider)
            .with_for_update()
        )
    leases = provider_leases.c
    await conn.execute(
        delete(provider_leases).where(leases.provider == provider, leases.expires_at < now)
    )


async def take_lease(
    conn: AsyncConnection,
    provider: str,
    *,
    cap: int,
    ticket: str,
    owner: str,
    job_id: str | None,
    now: Millis,
    hold_ms: int,
) -> bool:
    """Hold one of the provider's ``cap`` concurrent calls until ``now + hold_ms``; False when
    ``cap`` live leases exist.

    Invariant: at most ``cap`` unexpired leases per provider. The count and the insert are one
    statement; on PostgreSQL the provider's health row is locked first, so concurrent takers of
    the same provider count one after the other (SQLite's ``BEGIN IMMEDIATE`` already serialises
    writers). Leases of holders that died expire and are deleted here, so they are reused.
    """
    await _lock_leases(conn, provider, now)
    leases = provider_leases.c
    held = (
        select(func.count())
        .select_from(provider_leases)
        .where(leases.provider == provider)
        .scalar_subquery()
    )
    row = select(
        literal(ticket, leases.ticket.type),
        literal(provider, leases.provider.type),
        literal(job_id, leases.job_id.type),
        literal(owner, leases.owner.type),
        literal(now + hold_ms, leases.expires_at.type),
    ).where(held < cap)
    result = await conn.execute(
        provider_leases.insert()
        .from_select(["ticket", "provider", "job_id", "owner", "expires_at"], row)
        .returning(leases.ticket)
    )
    return result.first() is not None


_TAKE_PROVIDER_LEASES = text(
    "SELECT * FROM take_provider_leases(:provider, :cap, :owner, :now, :tickets, :job_ids,"
    " :expires_at)"
).bindparams(
    bindparam("tickets", type_=postgresql.ARRAY(String)),
    bindparam("job_ids", type_=postgresql.ARRAY(String)),
    bindparam("expires_at", type_=postgresql.ARRAY(BigInteger)),
)


async def take_leases(
    conn: AsyncConnection,
    provider: str,
    *,
    cap: int,
    owner: str,
    now: Millis,
    leases: Sequence[tuple[str, str | None, Millis]],
) -> list[str]:
    """``take_lease`` for many calls at once: ``leases`` are (ticket, job id, expiry), first
    come first served; the tickets of those that fit under ``cap``.

    The count and the insert run under the same lock as ``take_lease``'s (the provider's
    health row on PostgreSQL, SQLite's one writer), so the invariant holds the same way. On
    PostgreSQL the whole take is one statement (``take_provider_leases``, migration 0026),
    which may run alone (``Database.write_alone``): the health row is then held only while the
    server runs it, not across round trips.
    """
    if conn.dialect.name == "postgresql":
        result = await conn.execute(
            _TAKE_PROVIDER_LEASES,
            {
                "provider": provider,
                "cap": cap,
                "owner": owner,
                "now": now,
                "tickets": [ticket for ticket, _, _ in leases],
                "job_ids": [job_id for _, job_id, _ in leases],
                "expires_at": [expires_at for _, _, expires_at in leases],
            },
        )
        return [row[0] for row in result]
    await _lock_leases(conn, provider, now)
    table = provider_leases.c
    held = await conn.scalar(
        select(func.count()).select_from(provider_leases).where(table.provider == provider)
    )
    chosen = list(leases[: max(0, cap - int(held or 0))])
    if chosen:
        await conn.execute(
            provider_leases.insert(),
            [
                {
                    "ticket": ticket,
                    "provider": provider,
                    "job_id": job_id,
                    "owner": owner,
                    "expires_at": expires_at,
                }
                for ticket, job_id, expires_at in chosen
            ],
        )
    return [ticket for ticket, _, _ in chosen]


async def release_lease(conn: AsyncConnection, ticket: str, owner: str) -> None:
    await conn.execute(
        delete(provider_leases).where(
            provider_leases.c.ticket == ticket, provider_leases.c.owner == owner
        )
    )


async def release_leases(conn: AsyncConnection, tickets: Sequence[str], owner: str) -> None:
    """``release_lease`` for many tickets in one statement."""
    await conn.execute(
        delete(provider_leases).where(
            provider_leases.c.ticket.in_(tickets), provider_leases.c.owner == owner
        )
    )


_RELEASE_SUCCEEDED = text(
    """
    WITH released AS (
        DELETE FROM provider_leases AS l WHERE l.ticket = ANY (:tickets) AND l.owner = :owner
    )
    UPDATE provider_health AS h
    SET failures = 0, open_until = 0, misconfigured = NULL, updated_at = s.now
    FROM unnest(CAST(:providers AS VARCHAR[]), CAST(:nows AS BIGINT[])) AS s(provider, now)
    WHERE h.provider = s.provider
        AND (h.failures > 0 OR h.open_until > 0 OR h.misconfigured IS NOT NULL)
    """
).bindparams(
    bindparam("tickets", type_=postgresql.ARRAY(String)),
    bindparam("providers", type_=postgresql.ARRAY(String)),
    bindparam("nows", type_=postgresql.ARRAY(BigInteger)),
)


async def release_succeeded(
    conn: AsyncConnection, tickets: Sequence[str], owner: str, latest: Mapping[str, Millis]
) -> None:
    """Give back the leases of calls that succeeded and record each provider's success at its
    time in ``latest`` (``release_leases``, then ``record_success`` for each). On PostgreSQL
    both are one statement, which may run alone (``Database.write_alone``): one round trip
    instead of four, most of them to update no row (a provider already healthy)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            _RELEASE_SUCCEEDED,
            {
                "tickets": list(tickets),
                "owner": owner,
                "providers": list(latest),
                "nows": list(latest.values()),
            },
        )
        return
    await release_leases(conn, tickets, owner)
    for provider, now in latest.items():
        await record_success(conn, provider, now)


async def leases_held(conn: AsyncConnection, provider: str, now: Millis) -> int:
    """Calls in flight to ``provider`` (unexpired leases), for tests and metrics."""
    count = await conn.scalar(
        select(func.count())
        .select_from(provider_leases)
        .where(provider_leases.c.provider == provider, provider_leases.c.expires_at >= now)
    )
    return int(count or 0)
