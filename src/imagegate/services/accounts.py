"""Accounts, keys and credits: the operator's use-cases (CLI) and request authentication (API)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import uuid_utils

from imagegate.domain.keys import generate_key, key_hash, key_prefix
from imagegate.errors import ApiKeyInactive, ApiKeyInvalid, ApiKeyMissing, NotFound
from imagegate.store import accounts as store
from imagegate.store.accounts import AccountRow, ApiKeyRow
from imagegate.store.db import Database
from imagegate.types import Clock, Credits, KeyKind
from imagegate.webhooks.signing import new_secret

__all__ = [
    "Caller",
    "CreatedKey",
    "authenticate",
    "create_account",
    "create_key",
    "grant_credits",
    "rotate_webhook_secret",
]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the account, the key used, and whether it is a test key."""

    account_id: str
    key_id: str
    key_name: str
    key_prefix: str
    kind: KeyKind

    @property
    def is_test(self) -> bool:
        return self.kind is KeyKind.TEST


@dataclass(frozen=True)
class CreatedKey:
    """A new key; ``secret`` exists only here and is shown to the operator once."""

    secret: str
    row: ApiKeyRow


async def authenticate(db: Database, key: str | None) -> Caller:
    """The caller for an ``X-API-Key``/Bearer value; raises 401/403 errors as Apiframe does."""
    if not key:
        raise ApiKeyMissing()
    digest = key_hash(key)
    async with db.read() as conn:
        row = await store.find_key(conn, digest)
    if row is None or not hmac.compare_digest(row.key_hash, digest) or row.status == "revoked":
        raise ApiKeyInvalid()
    if row.status != "active":
        raise ApiKeyInactive()
    return Caller(row.account_id, row.id, row.name, row.prefix, row.kind)


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
    db: Database, clock: Clock, account_id: str, kind: KeyKind, name: str
) -> CreatedKey:
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
        )
        row = await store.find_key(conn, key_hash(secret))
    assert row is not None
    return CreatedKey(secret, row)


async def set_key_status(db: Database, clock: Clock, key: str, status: str) -> None:
    """Revoke (401 from then on) or deactivate (403) a key, by id, prefix or the key; immediate."""
    async with db.transaction() as conn:
        if not await store.set_key_status(conn, key, key_hash(key), status, clock.now_ms()):
            raise NotFound(f"No API key matches {key!r}")


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
