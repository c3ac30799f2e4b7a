"""Accounts, API keys and the credit ledger.

Credits move only through ``reserve``, ``refund``, ``capture`` and ``grant``; each writes a ledger
row in the caller's transaction, so ``SUM(amount)`` over an account's ledger always equals its
balance. ``reserve`` is one conditional ``UPDATE … WHERE credits >= cost``: two concurrent submits
can never both spend the last credits, on either engine, and the balance never goes negative.

Caps that count rows (concurrent jobs, daily spend, queued jobs) cannot be one conditional
statement, so admission first takes ``lock_for_admission``: the account row ``FOR NO KEY
UPDATE`` on PostgreSQL, which queues every other submit of the account behind this transaction
until it commits; on SQLite ``BEGIN IMMEDIATE`` already serialises writers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, bindparam, column, func, insert, select, table, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.store.prepared import prepared
from imagegate.store.tables import accounts, api_keys, jobs, ledger_entries
from imagegate.types import Credits, JobStatus, KeyKind, Millis

__all__ = [
    "AccountRow",
    "ApiKeyRow",
    "LedgerRow",
    "UnfinishedJobs",
    "balance",
    "capture",
    "find_key",
    "first_account_id",
    "get_account",
    "grant",
    "insert_account",
    "insert_key",
    "key_hash_of",
    "ledger_sum",
    "list_accounts",
    "list_keys",
    "list_ledger",
    "lock_first_start",
    "lock_for_admission",
    "refund",
    "reserve",
    "set_account_key_status",
    "set_account_limits",
    "set_key_limits",
    "set_key_status",
    "set_webhook_secrets",
    "spent_since",
]


@dataclass(frozen=True)
class AccountRow:
    id: str
    name: str
    email: str | None
    credits: Credits
    webhook_secret: str | None
    webhook_secret_previous: str | None
    created_at: Millis
    max_concurrent_jobs: int | None = None
    """Cap on QUEUED + PROCESSING jobs; None: no cap of its own."""
    max_daily_spend: Credits | None = None
    """Cap on credits reserved or charged by jobs created in one UTC day; None: no cap."""


@dataclass(frozen=True)
class ApiKeyRow:
    id: str
    account_id: str
    name: str
    prefix: str
    key_hash: str
    kind: KeyKind
    status: str
    created_at: Millis
    submit_rate: str | None = None
    """Requests that change something, in ``limits`` notation; None: the gateway default."""
    read_rate: str | None = None
    allowed_models: tuple[str, ...] | None = None
    """The model ids this key may submit; None: every model."""


@dataclass(frozen=True)
class LedgerRow:
    id: int
    account_id: str
    job_id: str | None
    kind: str
    amount: Credits
    balance_after: Credits
    note: str | None
    created_at: Millis


def _account(row: Any) -> AccountRow:
    # By attribute: a row read below SQLAlchemy (``prepared``) builds ``_mapping`` per call.
    return AccountRow(
        id=row.id,
        name=row.name,
        email=row.email,
        credits=row.credits,
        webhook_secret=row.webhook_secret,
        webhook_secret_previous=row.webhook_secret_previous,
        created_at=row.created_at,
        max_concurrent_jobs=row.max_concurrent_jobs,
        max_daily_spend=row.max_daily_spend,
    )


def _key(row: object) -> ApiKeyRow:
    m = row._mapping  # type: ignore[attr-defined]
    return ApiKeyRow(
        id=m["id"],
        account_id=m["account_id"],
        name=m["name"],
        prefix=m["prefix"],
        key_hash=m["key_hash"],
        kind=KeyKind(m["kind"]),
        status=m["status"],
        created_at=m["created_at"],
        submit_rate=m["submit_rate"],
        read_rate=m["read_rate"],
        allowed_models=tuple(m["allowed_models"]) if m["allowed_models"] is not None else None,
    )


async def insert_account(
    conn: AsyncConnection,
    *,
    account_id: str,
    name: str,
    email: str | None,
    webhook_secret: str,
    now: Millis,
) -> None:
    await conn.execute(
        insert(accounts).values(
            id=account_id,
            name=name,
            email=email,
            credits=0,
            webhook_secret=webhook_secret,
            created_at=now,
        )
    )


_GET_ACCOUNT = prepared(select(accounts).where(accounts.c.id == bindparam("account_id")))


async def get_account(conn: AsyncConnection, account_id: str) -> AccountRow | None:
    row = (await conn.execute(_GET_ACCOUNT, {"account_id": account_id})).first()
    return _account(row) if row else None


async def first_account_id(conn: AsyncConnection) -> str | None:
    """The oldest account: the one ``imagegate serve`` created on its first start."""
    value = await conn.scalar(
        select(accounts.c.id).order_by(accounts.c.created_at, accounts.c.id).limit(1)
    )
    return str(value) if value is not None else None


FIRST_START_LOCK_KEY = 0x69676273  # "igbs": a fixed, arbitrary number
"""The PostgreSQL advisory lock that serialises first-start bootstraps."""


async def lock_first_start(conn: AsyncConnection) -> None:
    """Hold the first-start lock until this transaction ends.

    On PostgreSQL an advisory transaction lock; on SQLite the write transaction's
    ``BEGIN IMMEDIATE`` already excludes every other writer, so there is nothing to take.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(select(func.pg_advisory_xact_lock(FIRST_START_LOCK_KEY)))


@dataclass(frozen=True)
class UnfinishedJobs:
    """An account's QUEUED and PROCESSING jobs, as the triggers of migrations 0007 and 0014
    keep them."""

    queued: int
    processing: int


_job_counts = table(
    "account_job_counts",
    column("account_id"),
    column("queued", Integer),
    column("processing", Integer),
)
"""SQLite only (migration 0007): each account's QUEUED and PROCESSING jobs, kept by triggers."""
_COUNTED_ACCOUNT = prepared(
    select(accounts, _job_counts.c.queued, _job_counts.c.processing)
    .select_from(accounts.outerjoin(_job_counts, _job_counts.c.account_id == accounts.c.id))
    .where(accounts.c.id == bindparam("account_id"))
)
_LOCK_FOR_ADMISSION = text(
    "SELECT (locked.account).*, locked.queued_jobs, locked.processing_jobs"
    " FROM lock_account_for_admission(:account_id) AS locked"
)


async def lock_for_admission(
    conn: AsyncConnection, account_id: str
) -> tuple[AccountRow | None, UnfinishedJobs]:
    """The account, locked until this transaction ends, and its unfinished jobs.

    On PostgreSQL one statement (``lock_account_for_admission``, migrations 0009 and 0014):
    the account row ``FOR NO KEY UPDATE``, then the sums of its counter rows (one per session
    that changed its jobs), read after the lock was granted, so every admission of the account
    before this one is counted. ``FOR NO KEY
    UPDATE`` rather than ``FOR UPDATE``: it still excludes every other admission (and the
    balance updates), but not the ``FOR KEY SHARE`` lock that inserting a row which references
    the account takes, so a transaction that inserted its job first cannot deadlock with
    another doing the same. Jobs whose change is not committed yet (a claim in flight) count
    as they were, as a scan of the jobs would see them. On SQLite ``BEGIN IMMEDIATE`` already
    serialises writers: the account and its counter row are read, in one statement. Without an
    account there is no counter row either (both go with it), so nothing is counted.
    """
    query = {"account_id": account_id}
    if conn.dialect.name == "postgresql":
        row = (await conn.execute(_LOCK_FOR_ADMISSION, query)).one()
        account = _account(row) if row.id is not None else None
        return account, UnfinishedJobs(row.queued_jobs, row.processing_jobs)
    counted = (await conn.execute(_COUNTED_ACCOUNT, query)).first()
    if counted is None:
        return None, UnfinishedJobs(0, 0)
    # No counter row yet: no job of the account was ever counted.
    return _account(counted), UnfinishedJobs(counted.queued or 0, counted.processing or 0)


async def set_account_limits(
    conn: AsyncConnection, account_id: str, values: Mapping[str, int | None]
) -> bool:
    """Set ``max_concurrent_jobs`` / ``max_daily_spend`` (None clears); False: no such account."""
    result = await conn.execute(
        update(accounts).where(accounts.c.id == account_id).values(**values)
    )
    return result.rowcount == 1


async def spent_since(conn: AsyncConnection, account_id: str, since: Millis) -> Credits:
    """Credits reserved or charged by the account's jobs created at or after ``since``.

    Failed and cancelled jobs were refunded, so they do not count.
    """
    refunded = (JobStatus.FAILED.value, JobStatus.CANCELLED.value)
    total = await conn.scalar(
        select(func.coalesce(func.sum(jobs.c.credit_cost), 0)).where(
            jobs.c.account_id == account_id,
            jobs.c.created_at >= since,
            jobs.c.status.not_in(refunded),
        )
    )
    return int(total or 0)


async def list_accounts(conn: AsyncConnection) -> list[AccountRow]:
    rows = await conn.execute(select(accounts).order_by(accounts.c.created_at))
    return [_account(row) for row in rows]


async def set_webhook_secrets(
    conn: AsyncConnection, account_id: str, current: str, previous: str | None
) -> None:
    await conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(webhook_secret=current, webhook_secret_previous=previous)
    )


async def insert_key(
    conn: AsyncConnection,
    *,
    key_id: str,
    account_id: str,
    name: str,
    prefix: str,
    key_hash: str,
    kind: KeyKind,
    now: Millis,
    submit_rate: str | None = None,
    read_rate: str | None = None,
    allowed_models: Sequence[str] | None = None,
) -> None:
    await conn.execute(
        insert(api_keys).values(
            submit_rate=submit_rate,
            read_rate=read_rate,
            allowed_models=list(allowed_models) if allowed_models is not None else None,
            id=key_id,
            account_id=account_id,
            name=name,
            prefix=prefix,
            key_hash=key_hash,
            kind=kind.value,
            status="active",
            created_at=now,
        )
    )


_FIND_KEY = select(api_keys).where(api_keys.c.key_hash == bindparam("key_hash"))


async def find_key(conn: AsyncConnection, key_hash: str) -> ApiKeyRow | None:
    row = (await conn.execute(_FIND_KEY, {"key_hash": key_hash})).first()
    return _key(row) if row else None


async def list_keys(conn: AsyncConnection, account_id: str | None = None) -> list[ApiKeyRow]:
    query = select(api_keys).order_by(api_keys.c.created_at)
    if account_id is not None:
        query = query.where(api_keys.c.account_id == account_id)
    return [_key(row) for row in await conn.execute(query)]


async def set_key_status(
    conn: AsyncConnection, key: str, digest: str, status: str, now: Millis
) -> bool:
    """Set a key's status by id, by its shown prefix or by the key itself (``digest`` is its
    SHA-256); False when no key matched."""
    c = api_keys.c
    result = await conn.execute(
        update(api_keys)
        .where((c.id == key) | (c.prefix == key) | (c.key_hash == digest))
        .values(status=status, revoked_at=now if status == "revoked" else None)
    )
    return result.rowcount == 1


async def set_key_limits(
    conn: AsyncConnection, key: str, digest: str, values: Mapping[str, Any]
) -> bool:
    """Set ``submit_rate``, ``read_rate`` or ``allowed_models`` (None: back to the default) of
    the key matched as in ``set_key_status``; False when no key matched."""
    c = api_keys.c
    changes = dict(values)
    if changes.get("allowed_models") is not None:
        changes["allowed_models"] = list(changes["allowed_models"])
    result = await conn.execute(
        update(api_keys)
        .where((c.id == key) | (c.prefix == key) | (c.key_hash == digest))
        .values(**changes)
    )
    return result.rowcount == 1


_BALANCE = prepared(select(accounts.c.credits).where(accounts.c.id == bindparam("account_id")))


async def balance(conn: AsyncConnection, account_id: str) -> Credits:
    value = await conn.scalar(_BALANCE, {"account_id": account_id})
    return int(value or 0)


_INSERT_ENTRY = prepared(insert(ledger_entries))
_RESERVE = prepared(
    update(accounts)
    .where(accounts.c.id == bindparam("account_id"), accounts.c.credits >= bindparam("cost"))
    .values(credits=accounts.c.credits - bindparam("cost"))
    .returning(accounts.c.credits)
)


async def _entry(
    conn: AsyncConnection,
    account_id: str,
    job_id: str | None,
    kind: str,
    amount: Credits,
    balance_after: Credits,
    now: Millis,
    note: str | None = None,
) -> None:
    await conn.execute(
        _INSERT_ENTRY,
        {
            "account_id": account_id,
            "job_id": job_id,
            "kind": kind,
            "amount": amount,
            "balance_after": balance_after,
            "note": note,
            "created_at": now,
        },
    )


async def reserve(
    conn: AsyncConnection, account_id: str, job_id: str, cost: Credits, now: Millis
) -> Credits | None:
    """Take ``cost`` credits for a job; the new balance, or None when the balance is short."""
    new_balance = await conn.scalar(_RESERVE, {"account_id": account_id, "cost": cost})
    if new_balance is None:
        return None
    await _entry(conn, account_id, job_id, "reserve", -cost, new_balance, now)
    return int(new_balance)


async def refund(
    conn: AsyncConnection, account_id: str, job_id: str, amount: Credits, now: Millis, note: str
) -> None:
    """Give a job's reserved credits back (failure, cancel)."""
    new_balance = await conn.scalar(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(credits=accounts.c.credits + amount)
        .returning(accounts.c.credits)
    )
    await _entry(conn, account_id, job_id, "refund", amount, int(new_balance), now, note)


async def capture(
    conn: AsyncConnection, account_id: str, job_id: str, amount: Credits, now: Millis
) -> None:
    """Record that a job's reservation became a charge (the balance already moved at reserve)."""
    current = await balance(conn, account_id)
    await _entry(conn, account_id, job_id, "capture", 0, current, now, f"charged {amount}")


async def grant(
    conn: AsyncConnection, account_id: str, amount: Credits, now: Millis, note: str | None = None
) -> Credits:
    """Add (or, negative, remove) credits by an operator; never below zero."""
    new_balance = await conn.scalar(
        update(accounts)
        .where(accounts.c.id == account_id, accounts.c.credits + amount >= 0)
        .values(credits=accounts.c.credits + amount)
        .returning(accounts.c.credits)
    )
    if new_balance is None:
        raise ValueError("the balance cannot go below zero")
    await _entry(conn, account_id, None, "grant", amount, int(new_balance), now, note)
    return int(new_balance)


async def ledger_sum(conn: AsyncConnection, account_id: str) -> Credits:
    total = await conn.scalar(
        select(func.coalesce(func.sum(ledger_entries.c.amount), 0)).where(
            ledger_entries.c.account_id == account_id
        )
    )
    return int(total or 0)


async def key_hash_of(conn: AsyncConnection, key_id: str | None) -> str | None:
    """The stored SHA-256 (hex) of a key: the secret of Apiframe's webhook signature."""
    if key_id is None:
        return None
    value = await conn.scalar(select(api_keys.c.key_hash).where(api_keys.c.id == key_id))
    return str(value) if value is not None else None


async def set_account_key_status(
    conn: AsyncConnection, account_id: str, key_id: str, status: str, now: Millis
) -> bool:
    """Set the status of the key ``key_id`` of ``account_id`` only, unless it is revoked
    (revoking is final); False when no such live-or-inactive key exists in that account."""
    c = api_keys.c
    result = await conn.execute(
        update(api_keys)
        .where(c.id == key_id, c.account_id == account_id, c.status != "revoked")
        .values(status=status, revoked_at=now if status == "revoked" else None)
    )
    return result.rowcount == 1


async def list_ledger(
    conn: AsyncConnection, account_id: str, *, limit: int, before_id: int | None = None
) -> list[LedgerRow]:
    """An account's ledger rows, newest first, keyset-paginated on the row id (``before_id``
    excluded); at most ``limit`` rows."""
    c = ledger_entries.c
    query = select(ledger_entries).where(c.account_id == account_id)
    if before_id is not None:
        query = query.where(c.id < before_id)
    rows = await conn.execute(query.order_by(c.id.desc()).limit(limit))
    return [
        LedgerRow(
            id=int(m["id"]),
            account_id=m["account_id"],
            job_id=m["job_id"],
            kind=m["kind"],
            amount=int(m["amount"]),
            balance_after=int(m["balance_after"]),
            note=m["note"],
            created_at=int(m["created_at"]),
        )
        for m in (row._mapping for row in rows)
    ]
