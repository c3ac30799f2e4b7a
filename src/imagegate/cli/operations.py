"""Operator commands for the data itself: ``backup`` (SQLite) and ``import`` (an embedded install
onto the configured database and storage, e.g. PostgreSQL and S3)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import typer
from rich.console import Console
from sqlalchemy.engine import make_url

from imagegate.cli.config import checked_settings
from imagegate.settings import Settings
from imagegate.storage.factory import create_object_store
from imagegate.storage.obstore_backend import settle
from imagegate.storage.signing import UrlSigner
from imagegate.store.db import Database
from imagegate.store.migrate import upgrade
from imagegate.store.transfer import NotEmpty, copy_database
from imagegate.types import SystemClock

__all__ = ["register"]

console = Console()


def register(app: typer.Typer) -> None:
    app.command()(backup)
    app.command("import")(import_install)


def backup(
    destination: Path = typer.Argument(..., help="The backup file to write (must not exist)."),
) -> None:
    """Copy the SQLite database, consistently, while the gateway keeps running.

    Uses SQLite's online backup API: writers are not stopped, and the copy is one consistent
    moment. PostgreSQL is backed up with pg_dump instead (docs/operations.md).
    """
    settings = checked_settings(database=True)
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        console.print(
            "[red]error:[/] IMAGEGATE_DATABASE_URL is not a SQLite file; back PostgreSQL up with "
            "pg_dump (docs/operations.md)"
        )
        raise typer.Exit(2)
    if destination.exists():
        console.print(f"[red]error:[/] {destination} exists; choose a new file")
        raise typer.Exit(2)
    destination.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{url.database}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(destination)
        try:
            source.backup(target, pages=1024)
        finally:
            target.close()
    finally:
        source.close()
    files = settings.storage_url or str(Path(settings.data_dir) / "files")
    console.print(f"database backed up to {destination}")
    console.print(f"stored images are not in it: copy {files} as well (rsync, a snapshot)")


def import_install(
    source: Path = typer.Argument(
        ..., help="The embedded install's data directory (its imagegate.db and files/)."
    ),
    from_database: str | None = typer.Option(
        None, help="The source database URL (default: SOURCE/imagegate.db)."
    ),
    from_storage: str | None = typer.Option(
        None, help="The source storage URL (default: SOURCE/files)."
    ),
) -> None:
    """Move an embedded install into the configured database and storage.

    The target (IMAGEGATE_DATABASE_URL, IMAGEGATE_STORAGE_URL …, e.g. PostgreSQL and S3) is
    migrated and must be empty; every row and every stored object is copied, ids unchanged, so
    keys, jobs, ledgers and result URLs carry over. Stop the embedded gateway first.
    """
    target = checked_settings(database=True, storage=True)
    source_url = from_database or f"sqlite+aiosqlite:///{(source / 'imagegate.db').resolve()}"
    source_settings = target.model_copy(
        update={
            "database_url": source_url,
            "data_dir": source,
            "storage_url": from_storage or (source / "files").resolve().as_uri(),
            "storage_options": {},
        }
    )
    try:
        rows, objects = asyncio.run(_import(source_settings, target))
    except NotEmpty as exc:
        console.print(f"[red]error:[/] {exc}; import into a new database")
        raise typer.Exit(2) from None
    console.print(f"imported {sum(rows.values())} rows and {objects} stored objects")
    key = source / "signing.key"
    if key.exists() and target.signing_secret is None:
        console.print(
            f"set IMAGEGATE_SIGNING_SECRET on every node to the contents of {key}, "
            "or URLs handed out before the move stop working"
        )


async def _import(source: Settings, target: Settings) -> tuple[dict[str, int], int]:
    await upgrade(target.database_url)
    signer = UrlSigner(b"import", target.public_base_url, SystemClock())
    source_db, target_db = Database(source.database_url), Database(target.database_url)
    try:
        rows = await copy_database(source_db, target_db)
    finally:
        await source_db.dispose()
        await target_db.dispose()
    source_store = create_object_store(source, signer)
    target_store = create_object_store(target, signer)
    objects = 0
    async for key in source_store.keys():
        stored = await source_store.head(key)
        await target_store.put(key, await source_store.get(key), stored.content_type)
        objects += 1
    await settle()  # the command exits right after
    return rows, objects
