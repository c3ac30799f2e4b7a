"""Operator commands, run against the database directly: accounts, keys, credits, models."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from imagegate.catalog import build_catalog
from imagegate.errors import ImagegateError
from imagegate.presenters import iso
from imagegate.services import accounts as account_service
from imagegate.settings import Settings
from imagegate.store import accounts as store
from imagegate.store.db import Database
from imagegate.store.migrate import upgrade
from imagegate.types import KeyKind, SystemClock

__all__ = ["register"]

console = Console()
T = TypeVar("T")

accounts_app = typer.Typer(help="Accounts (teams that own keys, credits and jobs).")
keys_app = typer.Typer(help="API keys: shown once at creation, stored as SHA-256.")
credits_app = typer.Typer(help="Credit balances and grants.")
webhooks_app = typer.Typer(help="Webhook signing secrets.")
models_app = typer.Typer(help="The model catalog.", invoke_without_command=True)

AccountOption = typer.Option(None, "--account", "-a", help="Account id (default: the only one).")


def register(app: typer.Typer) -> None:
    app.add_typer(accounts_app, name="accounts")
    app.add_typer(keys_app, name="keys")
    app.add_typer(credits_app, name="credits")
    app.add_typer(webhooks_app, name="webhooks")
    app.add_typer(models_app, name="models")


def _run(action: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        settings = Settings()
        await upgrade(settings.database_url)
        db = Database(settings.database_url)
        try:
            return await action(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except ImagegateError as exc:
        console.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(1) from None


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


async def _account_id(db: Database, account: str | None) -> str:
    if account:
        return account
    async with db.read() as conn:
        rows = await store.list_accounts(conn)
    if len(rows) != 1:
        raise ImagegateError(
            f"there are {len(rows)} accounts; choose one with --account (`imagegate accounts list`)"
        )
    return rows[0].id


@accounts_app.command("create")
def accounts_create(
    name: str,
    email: str = typer.Option(..., help="The owner's email, shown by GET /v2/me."),
) -> None:
    """Create an account; every account has an owner's email (Apiframe clients require one)."""
    if not _EMAIL.fullmatch(email.strip()):
        raise typer.BadParameter(f"{email!r} is not an email address", param_hint="--email")
    email = email.strip()
    account = _run(lambda db: account_service.create_account(db, SystemClock(), name, email))
    console.print(f"account {account.id} created")


def _cap(value: str | None, option: str) -> int | None:
    if value is None or value.strip().lower() in ("none", "off", ""):
        return None
    if not value.strip().isdigit():
        raise ImagegateError(f"{option} takes a whole number, or 'none' to lift the cap")
    return int(value)


@accounts_app.command("limits")
def accounts_limits(
    account: str | None = AccountOption,
    concurrent_jobs: str | None = typer.Option(
        None, "--concurrent-jobs", help="Most QUEUED + PROCESSING jobs at once; 'none' lifts it."
    ),
    daily_spend: str | None = typer.Option(
        None, "--daily-spend", help="Most credits spent per UTC day; 'none' lifts it."
    ),
) -> None:
    """Show, or set, the account's caps; a submit beyond one gets 429 and is not charged."""

    async def action(db: Database) -> store.AccountRow:
        account_id = await _account_id(db, account)
        changes: dict[str, int | None] = {}
        if concurrent_jobs is not None:
            changes["max_concurrent_jobs"] = _cap(concurrent_jobs, "--concurrent-jobs")
        if daily_spend is not None:
            changes["max_daily_spend"] = _cap(daily_spend, "--daily-spend")
        if changes:
            return await account_service.set_account_limits(db, account_id, changes)
        async with db.read() as conn:
            row = await store.get_account(conn, account_id)
        if row is None:
            raise ImagegateError(f"Account {account_id} not found")
        return row

    row = _run(action)
    concurrent = row.max_concurrent_jobs
    spend = row.max_daily_spend
    console.print(
        f"account {row.id}: concurrent jobs {concurrent if concurrent is not None else 'no cap'},"
        f" daily spend {f'{spend} credits' if spend is not None else 'no cap'}"
    )


@accounts_app.command("list")
def accounts_list() -> None:
    async def action(db: Database) -> list[store.AccountRow]:
        async with db.read() as conn:
            return await store.list_accounts(conn)

    table = Table("id", "name", "credits", "created")
    for row in _run(action):
        table.add_row(row.id, row.name, str(row.credits), iso(row.created_at) or "")
    console.print(table)


RateOption = typer.Option(
    None,
    "--rate",
    help="Requests that change something (submits, …), e.g. 60/minute; 'default' resets.",
)
ReadRateOption = typer.Option(
    None, "--read-rate", help="Requests that only read, e.g. 600/minute; 'default' resets."
)
ModelsOption = typer.Option(
    None, "--models", help="Comma-separated model ids the key may use; 'all' lifts it."
)
_CLEAR = ("default", "none", "all", "")


def _rate(value: str | None) -> str | None:
    return None if value is None or value.strip().lower() in _CLEAR else value.strip()


def _models(value: str) -> list[str] | None:
    """``--models a,b`` as model ids from the catalog (an unknown one is an error); 'all': None."""
    if value.strip().lower() in _CLEAR:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    catalog = build_catalog(Settings().prices)
    unknown = [name for name in names if catalog.get(name) is None]
    if unknown:
        raise ImagegateError(
            f"unknown model {', '.join(map(repr, unknown))} (`imagegate models` lists them)"
        )
    return names


@keys_app.command("create")
def keys_create(
    name: str = typer.Option("key", help="A label for the key."),
    test: bool = typer.Option(False, "--test", help="A test key: sandbox only, never charged."),
    account: str | None = AccountOption,
    rate: str | None = RateOption,
    read_rate: str | None = ReadRateOption,
    models: str | None = ModelsOption,
) -> None:
    """Create a key and print it once."""

    async def action(db: Database) -> account_service.CreatedKey:
        account_id = await _account_id(db, account)
        kind = KeyKind.TEST if test else KeyKind.LIVE
        return await account_service.create_key(
            db,
            SystemClock(),
            account_id,
            kind,
            name,
            submit_rate=_rate(rate),
            read_rate=_rate(read_rate),
            allowed_models=_models(models) if models is not None else None,
        )

    created = _run(action)
    console.print(f"{created.row.kind.value} key {created.row.id} ({created.row.name}):")
    typer.echo(created.secret)


@keys_app.command("list")
def keys_list(account: str | None = AccountOption) -> None:
    async def action(db: Database) -> list[store.ApiKeyRow]:
        async with db.read() as conn:
            return await store.list_keys(conn, account)

    table = Table(
        "id", "prefix", "name", "kind", "status", "account", "rate", "read rate", "models"
    )
    for row in _run(action):
        table.add_row(
            row.id,
            row.prefix + "…",
            row.name,
            row.kind.value,
            row.status,
            row.account_id,
            row.submit_rate or "default",
            row.read_rate or "default",
            ", ".join(row.allowed_models) if row.allowed_models is not None else "all",
        )
    console.print(table)


@keys_app.command("limit")
def keys_limit(
    key: str = typer.Argument(..., help="Key id, prefix or the key itself."),
    rate: str | None = RateOption,
    read_rate: str | None = ReadRateOption,
    models: str | None = ModelsOption,
) -> None:
    """Set a key's own request rates and the models it may use; the next request obeys them."""
    changes: dict[str, Any] = {}
    if rate is not None:
        changes["submit_rate"] = _rate(rate)
    if read_rate is not None:
        changes["read_rate"] = _rate(read_rate)

    async def action(db: Database) -> store.ApiKeyRow:
        if models is not None:
            changes["allowed_models"] = _models(models)
        if not changes:
            raise ImagegateError("nothing to change: give --rate, --read-rate or --models")
        return await account_service.set_key_limits(db, key, changes)

    row = _run(action)
    allowed = ", ".join(row.allowed_models) if row.allowed_models is not None else "all"
    console.print(
        f"key {row.id}: rate {row.submit_rate or 'default'}, read rate"
        f" {row.read_rate or 'default'}, models {allowed}"
    )


@keys_app.command("revoke")
def keys_revoke(key: str = typer.Argument(..., help="Key id, prefix or the key itself.")) -> None:
    """Revoke a key at once (requests with it get 401)."""
    _run(lambda db: account_service.set_key_status(db, SystemClock(), key, "revoked"))
    console.print(f"key {key} revoked")


@keys_app.command("deactivate")
def keys_deactivate(
    key: str = typer.Argument(..., help="Key id, prefix or the key itself."),
) -> None:
    """Deactivate a key (requests with it get 403 "API key is inactive")."""
    _run(lambda db: account_service.set_key_status(db, SystemClock(), key, "inactive"))
    console.print(f"key {key} deactivated")


@credits_app.command("grant")
def credits_grant(
    amount: int = typer.Argument(..., help="Credits to add (negative to remove)."),
    account: str | None = AccountOption,
    note: str | None = typer.Option(None),
) -> None:
    async def action(db: Database) -> int:
        account_id = await _account_id(db, account)
        try:
            return await account_service.grant_credits(db, SystemClock(), account_id, amount, note)
        except ValueError as exc:
            raise ImagegateError(str(exc)) from None

    console.print(f"balance: {_run(action)} credits")


@credits_app.command("show")
def credits_show(account: str | None = AccountOption) -> None:
    async def action(db: Database) -> tuple[int, int]:
        account_id = await _account_id(db, account)
        async with db.read() as conn:
            return await store.balance(conn, account_id), await store.ledger_sum(conn, account_id)

    balance, ledger = _run(action)
    console.print(f"balance: {balance} credits (ledger total {ledger})")


@webhooks_app.command("secret")
def webhooks_secret(
    rotate: bool = typer.Option(
        False,
        "--rotate",
        help="Make a new secret; the old one keeps signing beside it until the next rotation.",
    ),
    account: str | None = AccountOption,
) -> None:
    """Show (or rotate) the account's Standard Webhooks signing secret."""

    async def action(db: Database) -> tuple[str | None, str | None]:
        account_id = await _account_id(db, account)
        if rotate:
            return await account_service.rotate_webhook_secret(db, account_id)
        async with db.read() as conn:
            row = await store.get_account(conn, account_id)
        assert row is not None
        return row.webhook_secret, row.webhook_secret_previous

    current, previous = _run(action)
    typer.echo(current or "")
    if previous:
        console.print(f"(previous secret still signing: {previous})")


@models_app.callback()
def models_list(ctx: typer.Context) -> None:
    """Print the model table."""
    if ctx.invoked_subcommand is not None:
        return
    catalog = build_catalog(Settings().prices)
    # Labels are text, not Rich markup: "FLUX.2 [pro]" would otherwise lose its "[pro]".
    table = Table("id", "label", "params", "credits", "pricing")
    for spec in catalog:
        low, high = catalog.cost_range(spec)
        table.add_row(
            spec.id,
            escape(spec.label),
            spec.params_key,
            str(low) if low == high else f"{low}–{high}",
            spec.pricing_mode,
        )
    console.print(table)


@models_app.command("show")
def models_show(model_id: str) -> None:
    """Print a model's params JSON Schema."""
    catalog = build_catalog(Settings().prices)
    spec = catalog.get(model_id)
    if spec is None:
        console.print(f"[red]error:[/] unknown model {model_id!r}")
        raise typer.Exit(1)
    console.print(f"[bold]{escape(spec.label)}[/] ({spec.id}) — {escape(spec.description)}")
    typer.echo(json.dumps(spec.params.model_json_schema(), indent=2))
