"""Accounts, keys and credits: the operator's use-cases (CLI) and request authentication (API)."""

from __future__ import annotations

import asyncio
import functools
import hmac
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import uuid_utils

from imagegate.domain.keys import generate_key, key_hash, key_prefix
from imagegate.errors import (
    ApiKeyInactive,
    ApiKeyInvalid,
    ApiKeyMissing,
    Conflict,
    Forbidden,
    ModelNotAllowed,
    NotFound,
    ValidationFailed,
)
from imagegate.settings import parse_rate
from imagegate.store import accounts as store
from imagegate.store.accounts import AccountRow, ApiKeyRow, LedgerRow
from imagegate.store.db import Database
from imagegate.types import Clock, Credits, KeyKind
from imagegate.webhooks.signing import new_secret

__all__ = [
    "KEY_CACHE_SECONDS",
    "KEY_STATUSES",
    "Caller",
    "CreatedKey",
    "KeyCache",
    "LedgerPage",
    "account_keys",
    "authenticate",
    "create_account",
    "create_key",
    "create_own_key",
    "grant_credits",
    "is_operator",
    "ledger_page",
    "rotate_webhook_secret",
    "set_account_limits",
    "set_key_limits",
    "set_own_key_status",
    "webhook_secrets",
]

KEY_STATUSES = ("active", "inactive", "revoked")


@dataclass(frozen=True)
class Caller:
    """Who is calling: the account, the key used, and whether it is a test key."""

    account_id: str
    key_id: str
    key_name: str
    key_prefix: str
    kind: KeyKind
    submit_rate: str | None = None
    """This key's own rate for requests that change something; None: the gateway default."""
    read_rate: str | None = None
    allowed_models: tuple[str, ...] | None = None
    """The model ids this key may submit; None: every model."""

    @property
    def is_test(self) -> bool:
        return self.kind is KeyKind.TEST

    def check_model(self, model: str) -> None:
        """Raises ``ModelNotAllowed`` (403) when this key is restricted to other models."""
        if self.allowed_models is not None and model not in self.allowed_models:
            raise ModelNotAllowed(model, self.allowed_models)


@dataclass(frozen=True)
class CreatedKey:
    """A new key; ``secret`` exists only here and is shown to the operator once."""

    secret: str
    row: ApiKeyRow


KEY_CACHE_SECONDS = 1.0
"""How long a process trusts what it last read about a key: a revocation, a new status or new
limits reach every process within this time."""

KEY_CACHE_SIZE = 10_000


async def authenticate(db: Database, key: str | None) -> Caller:
    """The caller for an ``X-API-Key``/Bearer value; raises 401/403 errors as Apiframe does."""
    if not key:
        raise ApiKeyMissing()
    digest = key_hash(key)
    async with db.read() as conn:
        row = await store.find_key(conn, digest)
    return _caller(row, digest)


class KeyCache:
    """``authenticate`` that reads a key from the database at most once per ``ttl`` seconds.

    Every request authenticates, and reading the key was most of a cheap request's database
    time. What was read (a key row, active or not) is trusted for ``ttl`` seconds, so a key
    revoked or restricted on any process stops working everywhere within that time. Unknown
    keys are not remembered: guessing costs the guesser a database read, never this memory.
    A key changed through this process (``set_key_status``, ``set_key_limits``,
    ``set_own_key_status`` on the same ``Database``) is read afresh at once.
    """

    def __init__(
        self,
        db: Database,
        *,
        ttl: float = KEY_CACHE_SECONDS,
        size: int = KEY_CACHE_SIZE,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._ttl = ttl
        self._size = size
        self._monotonic = monotonic
        self._rows: dict[str, tuple[float, ApiKeyRow, Caller | None]] = {}
        """By key digest: when the row was read, the row, and its caller if the key is usable
        (made once: a cached key answers the same ``Caller``)."""
        self._loading: dict[str, asyncio.Future[ApiKeyRow | None]] = {}
        self._generation = 0
        _KEY_CACHES.setdefault(db, weakref.WeakSet()).add(self)

    async def authenticate(self, key: str | None) -> Caller:
        if not key:
            raise ApiKeyMissing()
        digest = key_hash(key)
        now = self._monotonic()
        cached = self._rows.get(digest)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[2] or _caller(cached[1], digest)  # no caller: raises 401 or 403
        loading = self._loading.get(digest)
        if loading is None:
            # One read per key at a time: the requests that miss meanwhile wait for it.
            loading = asyncio.ensure_future(self._load(digest, now, self._generation))
            self._loading[digest] = loading
            loading.add_done_callback(functools.partial(self._loaded, digest))
        return _caller(await asyncio.shield(loading), digest)

    async def _load(self, digest: str, now: float, generation: int) -> ApiKeyRow | None:
        row = await self._db.read_with(functools.partial(store.find_key, key_hash=digest))
        if generation != self._generation:  # cleared meanwhile: this row may predate a change
            return row
        if row is None:
            self._rows.pop(digest, None)
        else:
            if len(self._rows) >= self._size:
                self._rows.clear()
            usable = hmac.compare_digest(row.key_hash, digest) and row.status == "active"
            self._rows[digest] = (now, row, _caller(row, digest) if usable else None)
        return row

    def _loaded(self, digest: str, loading: asyncio.Future[ApiKeyRow | None]) -> None:
        if self._loading.get(digest) is loading:
            del self._loading[digest]

    def clear(self) -> None:
        self._generation += 1
        self._rows.clear()
        self._loading.clear()


_KEY_CACHES: weakref.WeakKeyDictionary[Database, weakref.WeakSet[KeyCache]] = (
    weakref.WeakKeyDictionary()
)
"""This process's key caches by the database they read: a key changed here is forgotten here."""


def _keys_changed(db: Database) -> None:
    for cache in _KEY_CACHES.get(db, ()):
        cache.clear()


def _caller(row: ApiKeyRow | None, digest: str) -> Caller:
    if row is None or not hmac.compare_digest(row.key_hash, digest) or row.status == "revoked":
        raise ApiKeyInvalid()
    if row.status != "active":
        raise ApiKeyInactive()
    return Caller(
        row.account_id,
        row.id,
        row.name,
        row.prefix,
        row.kind,
        submit_rate=row.submit_rate,
        read_rate=row.read_rate,
        allowed_models=row.allowed_models,
    )


async def create_account(
    db: Database, clock: Clock, name: str, email: str | None = None
) -> AccountRow:
    account_id = str(uuid_utils.uuid7())
    async with db.transaction() as conn:
        await store.insert_account(
            conn,
            account_id=account_id,
            name=name,
            email=email,
            webhook_secret=new_secret(),
            now=clock.now_ms(),
        )
        account = await store.get_account(conn, account_id)
    assert account is not None
    return account


async def create_key(
    db: Database,
    clock: Clock,
    account_id: str,
    kind: KeyKind,
    name: str,
    *,
    submit_rate: str | None = None,
    read_rate: str | None = None,
    allowed_models: Sequence[str] | None = None,
) -> CreatedKey:
    """A new key; the rates (``limits`` notation) and models restrict it from the start."""
    _check_rates({"submit_rate": submit_rate, "read_rate": read_rate})
    secret = generate_key(kind)
    key_id = str(uuid_utils.uuid7())
    async with db.transaction() as conn:
        if await store.get_account(conn, account_id) is None:
            raise NotFound(f"Account {account_id} not found")
        await store.insert_key(
            conn,
            key_id=key_id,
            account_id=account_id,
            name=name,
            prefix=key_prefix(secret),
            key_hash=key_hash(secret),
            kind=kind,
            now=clock.now_ms(),
            submit_rate=submit_rate,
            read_rate=read_rate,
            allowed_models=allowed_models,
        )
        row = await store.find_key(conn, key_hash(secret))
    assert row is not None
    return CreatedKey(secret, row)


async def set_key_status(db: Database, clock: Clock, key: str, status: str) -> None:
    """Revoke (401 from then on) or deactivate (403) a key, by id, prefix or the key; at once in
    this process, within ``KEY_CACHE_SECONDS`` in every other."""
    async with db.transaction() as conn:
        if not await store.set_key_status(conn, key, key_hash(key), status, clock.now_ms()):
            raise NotFound(f"No API key matches {key!r}")
    _keys_changed(db)


async def set_key_limits(db: Database, key: str, changes: Mapping[str, Any]) -> ApiKeyRow:
    """Change a key's ``submit_rate``, ``read_rate`` or ``allowed_models`` (None: the default),
    by id, prefix or the key; the next request with the key obeys them."""
    _check_rates(changes)
    async with db.transaction() as conn:
        if not await store.set_key_limits(conn, key, key_hash(key), changes):
            raise NotFound(f"No API key matches {key!r}")
        rows = await store.list_keys(conn)
    _keys_changed(db)
    digest = key_hash(key)
    return next(row for row in rows if key in (row.id, row.prefix) or row.key_hash == digest)


async def set_account_limits(
    db: Database, account_id: str, changes: Mapping[str, int | None]
) -> AccountRow:
    """Change ``max_concurrent_jobs`` / ``max_daily_spend`` (None: no cap); the next submit
    obeys them. Jobs already admitted are never cancelled by a lower cap."""
    for name, value in changes.items():
        if value is not None and value < 0:
            raise ValidationFailed({name: ["must be 0 or more"]}, f"{name} must be 0 or more")
    async with db.transaction() as conn:
        if not await store.set_account_limits(conn, account_id, changes):
            raise NotFound(f"Account {account_id} not found")
        account = await store.get_account(conn, account_id)
    assert account is not None
    return account


def _check_rates(changes: Mapping[str, Any]) -> None:
    for name in ("submit_rate", "read_rate"):
        value = changes.get(name)
        if value is not None:
            try:
                parse_rate(value)
            except ValueError as exc:
                raise ValidationFailed({name: [str(exc)]}, f"{name}: {exc}") from None


async def grant_credits(
    db: Database, clock: Clock, account_id: str, amount: Credits, note: str | None = None
) -> Credits:
    async with db.transaction() as conn:
        if await store.get_account(conn, account_id) is None:
            raise NotFound(f"Account {account_id} not found")
        return await store.grant(conn, account_id, amount, clock.now_ms(), note)


async def rotate_webhook_secret(db: Database, account_id: str) -> tuple[str, str | None]:
    """A new signing secret; the previous one keeps signing beside it until the next rotation."""
    async with db.transaction() as conn:
        account = await store.get_account(conn, account_id)
        if account is None:
            raise NotFound(f"Account {account_id} not found")
        secret = new_secret()
        await store.set_webhook_secrets(conn, account_id, secret, account.webhook_secret)
    return secret, account.webhook_secret


# The use-cases below serve a key's own account over HTTP (``/v2/account/...``). Their rules:
#
# - every one is scoped to the caller's account: another account's key id is a 404, never a 403,
#   so ids cannot be probed;
# - a key never revokes or deactivates itself (409): the account always keeps the key that is
#   signed in, so no request can lock an account out of its own API; the operator CLI
#   (``imagegate keys revoke``) is the way to retire the last key;
# - a test key acts only on test keys (403 otherwise), so a sandbox key handed to a developer
#   can neither mint a key that spends credits nor switch off a live one;
# - revoking is final: a revoked key cannot be deactivated or activated again (409).


@dataclass(frozen=True)
class LedgerPage:
    balance: Credits
    entries: list[LedgerRow]
    next_cursor: int | None


async def account_keys(db: Database, caller: Caller) -> list[ApiKeyRow]:
    """Every key of the caller's account, oldest first (revoked ones included)."""
    async with db.read() as conn:
        return await store.list_keys(conn, caller.account_id)


async def create_own_key(
    db: Database, clock: Clock, caller: Caller, kind: KeyKind, name: str
) -> CreatedKey:
    """A new key of the caller's account; a test key may create only test keys."""
    if caller.is_test and kind is not KeyKind.TEST:
        raise Forbidden("A test key can create only test keys; sign in with a live key")
    name = name.strip()
    if not name:
        raise ValidationFailed.field("name", "is required")
    if len(name) > 200:
        raise ValidationFailed.field("name", "must be at most 200 characters")
    return await create_key(db, clock, caller.account_id, kind, name)


async def set_own_key_status(
    db: Database, clock: Clock, caller: Caller, key_id: str, status: str
) -> ApiKeyRow:
    """Revoke, deactivate or re-activate a key of the caller's account (rules above)."""
    if status not in KEY_STATUSES:
        raise ValidationFailed.field("status", f"must be one of {', '.join(KEY_STATUSES)}")
    async with db.transaction() as conn:
        keys = {key.id: key for key in await store.list_keys(conn, caller.account_id)}
        key = keys.get(key_id)
        if key is None:
            raise NotFound("API key not found")
        if key.id == caller.key_id and status != "active":
            raise Conflict(
                "A key cannot revoke or deactivate itself; sign in with another key of the account"
            )
        if caller.is_test and key.kind is not KeyKind.TEST:
            raise Forbidden("A test key can change only test keys; sign in with a live key")
        if key.status == "revoked":
            raise Conflict("The key is revoked; revoking is final")
        await store.set_account_key_status(conn, caller.account_id, key.id, status, clock.now_ms())
        updated = {k.id: k for k in await store.list_keys(conn, caller.account_id)}[key.id]
    _keys_changed(db)
    return updated


async def ledger_page(
    db: Database, caller: Caller, *, limit: int, cursor: int | None = None
) -> LedgerPage:
    """The caller's balance and ledger rows, newest first; ``next_cursor`` pages on."""
    async with db.read() as conn:
        balance = await store.balance(conn, caller.account_id)
        rows = await store.list_ledger(conn, caller.account_id, limit=limit + 1, before_id=cursor)
    has_more = len(rows) > limit
    rows = rows[:limit]
    return LedgerPage(balance, rows, rows[-1].id if has_more else None)


async def webhook_secrets(db: Database, caller: Caller) -> tuple[str | None, str | None]:
    """The caller's account webhook signing secret and the previous one (still signing)."""
    async with db.read() as conn:
        account = await store.get_account(conn, caller.account_id)
    if account is None:
        raise NotFound("Account not found")
    return account.webhook_secret, account.webhook_secret_previous


async def is_operator(db: Database, caller: Caller) -> bool:
    """The operator's account is the first one created (``imagegate serve`` makes it on its
    first start, see ``services.bootstrap``); only its keys see the gateway-wide view."""
    async with db.read() as conn:
        return await store.first_account_id(conn) == caller.account_id
