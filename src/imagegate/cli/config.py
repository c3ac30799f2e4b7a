"""``imagegate config check``, and the checks every long-running process makes before it starts.

A process that cannot work should say so at once, in one line naming the setting to fix: an
unknown name (``IMAGEGATE_WORKRES``), a bad value, a database or bucket that does not answer.
Later, inside the running gateway, the same faults would be 503s and a log full of retries.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import sys
import uuid
from collections.abc import Mapping
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import typer
from pydantic import SecretStr

from imagegate.catalog import build_catalog
from imagegate.errors import ServiceUnavailable
from imagegate.providers.pool import SANDBOX
from imagegate.providers.registry import check_options
from imagegate.settings import (
    ProviderSettings,
    SettingError,
    SettingName,
    Settings,
    config_file_path,
    load_settings,
    read_config_file,
    written_paths,
)
from imagegate.storage.factory import create_object_store
from imagegate.storage.obstore_backend import settle
from imagegate.storage.signing import UrlSigner
from imagegate.store.db import Database
from imagegate.types import SystemClock

__all__ = [
    "checked_settings",
    "effective_configuration",
    "provider_names",
    "reachable",
    "register",
]

config_app = typer.Typer(help="The gateway's configuration.", no_args_is_help=True)

CONNECT_TIMEOUT_SECONDS = 20.0
"""How long the start-up check waits for the database or the bucket to answer."""

MASK = "****"
_SECRET_NAME = re.compile(r"(secret|password|token|(^|_)key$)")
"""Option names whose values are credentials: ``secret_access_key``, ``access_key``, …"""


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")


def provider_names() -> frozenset[str]:
    """Every provider an operator can configure: those the catalog routes to, and the sandbox."""
    routed = {route.provider for spec in build_catalog() for route in spec.routes}
    return frozenset(routed | {SANDBOX})


EXIT_BAD_SETTING = 2
"""A name or value is wrong: restarting will not help (the systemd units do not)."""
EXIT_UNREACHABLE = 1
"""The database or the bucket did not answer: perhaps not up yet, so a supervisor may retry."""


class Unreachable(SettingError):
    """The setting reads well, but what it points at does not answer or refuses."""


def _fail(exc: SettingError) -> NoReturn:
    typer.echo(f"imagegate: {exc}", err=True)
    if isinstance(exc, Unreachable):
        # A bucket that did not answer can leave the object store's Rust runtime (obstore's
        # shared Tokio threads) with work in flight; if one of its threads runs into the
        # interpreter's teardown it aborts the process (SIGABRT instead of this exit status).
        # Nothing is left to clean up at this point, so leave without the teardown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_UNREACHABLE)
    raise typer.Exit(EXIT_BAD_SETTING)


def checked_settings(*, database: bool = False, storage: bool = False) -> Settings:
    """The settings, or exit with one line: names and values, then what the caller needs reached.

    Exit status 2 for a wrong name or value, 1 for a database or bucket that does not answer.

    ``serve`` and ``worker`` check both the database and the bucket; ``migrate`` the database.
    """
    try:
        settings = load_settings(provider_names())
        _check_provider_options(settings)
        if settings.tracing and importlib.util.find_spec("opentelemetry.sdk") is None:
            raise SettingError(
                "IMAGEGATE_TRACING is true but OpenTelemetry is not installed: "
                "pip install 'imagegate[otel]', or unset IMAGEGATE_TRACING"
            )
        if database or storage:
            asyncio.run(reachable(settings, database=database, storage=storage))
    except SettingError as exc:
        _fail(exc)
    return settings


def _check_provider_options(settings: Settings) -> None:
    """Each configured provider's ``options`` as its vendor module declares them."""
    for name, config in settings.providers.items():
        try:
            check_options(name, config)
        except ValueError as exc:
            raise SettingError(str(exc)) from None


def _first_line(exc: BaseException) -> str:
    """A driver's message, one line: psycopg and obstore add hints and debug dumps below."""
    cause: BaseException = exc
    while cause.__cause__ is not None:
        cause = cause.__cause__
    orig = getattr(cause, "orig", None)
    text = str(orig if orig is not None else cause).strip() or type(cause).__name__
    line = text.splitlines()[0].strip()
    return line if len(line) <= 300 else line[:297] + "..."


async def reachable(settings: Settings, *, database: bool = True, storage: bool = True) -> None:
    """Raise ``Unreachable`` naming the setting when the database or the bucket fails.

    A URL that cannot even be used (unknown scheme, a driver not installed) is a plain
    ``SettingError``.
    """
    if database:
        await _database_answers(settings)
    if storage:
        await _storage_writable(settings)
        await settle()  # ``config check --connect`` exits right after


async def _database_answers(settings: Settings) -> None:
    where = f"IMAGEGATE_DATABASE_URL ({mask_url(settings.database_url)})"
    try:
        db = Database(settings.database_url)
    except Exception as exc:  # a URL SQLAlchemy cannot parse, a driver that is not installed
        raise SettingError(f"{where}: {_first_line(exc)}") from None
    try:
        await asyncio.wait_for(db.ping(), CONNECT_TIMEOUT_SECONDS)
    except ServiceUnavailable as exc:
        raise Unreachable(f"{where}: cannot connect: {_first_line(exc)}") from None
    except TimeoutError:
        raise Unreachable(f"{where}: no answer within {CONNECT_TIMEOUT_SECONDS:.0f} s") from None
    except Exception as exc:
        raise Unreachable(f"{where}: {_first_line(exc)}") from None
    finally:
        await db.dispose()


async def _storage_writable(settings: Settings) -> None:
    """Write and delete one small object: a bucket that exists but refuses writes fails here."""
    where = f"IMAGEGATE_STORAGE_URL ({settings.storage_url or 'the data dir'})"
    signer = UrlSigner(b"start-up check", settings.public_base_url, SystemClock())
    try:
        store = create_object_store(settings, signer)
    except (ValueError, OSError) as exc:
        raise SettingError(f"{where}: {_first_line(exc)}") from None
    key = f"imagegate-start-check-{uuid.uuid4().hex}.txt"  # top level: no directory left behind
    try:
        await asyncio.wait_for(
            store.put(key, b"imagegate start-up check\n", "text/plain"), CONNECT_TIMEOUT_SECONDS
        )
        await asyncio.wait_for(store.delete(key), CONNECT_TIMEOUT_SECONDS)
    except TimeoutError:
        raise Unreachable(f"{where}: no answer within {CONNECT_TIMEOUT_SECONDS:.0f} s") from None
    except Exception as exc:
        raise Unreachable(f"{where}: cannot write: {_first_line(exc)}") from None


def mask_url(url: str) -> str:
    """The URL with any password in it replaced by ``****``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def _masked(name: str, value: Any) -> Any:
    """``value`` fit to print: secrets replaced, passwords cut out of URLs, mappings walked."""
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, Mapping):
        return {str(key): _masked(str(key), item) for key, item in value.items()}
    if _SECRET_NAME.search(name.lower()) and value not in (None, ""):
        return MASK
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


def _text(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, Mapping | list):
        return json.dumps(value, default=str)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _source(path: tuple[str, ...], written: list[SettingName]) -> str:
    """``env`` wins over ``toml`` (as when the values are read); else ``default``."""
    for source in ("env", "toml"):
        for name in written:
            if name.source != source:
                continue
            shorter = min(len(name.path), len(path))
            if name.path[:shorter] == path[:shorter]:
                return source
    return "default"


def effective_configuration(
    settings: Settings, environ: Mapping[str, str], toml: Mapping[str, Any]
) -> list[tuple[str, str, str]]:
    """``(IMAGEGATE_NAME, printable value, source)`` for every setting, secrets masked.

    Providers are spelled out one field per line; their ``options`` stay one JSON object.
    """
    written = written_paths(environ, toml)
    lines: list[tuple[str, str, str]] = []

    def add(path: tuple[str, ...], value: Any) -> None:
        name = SettingName("env", path).render()
        lines.append((name, _text(_masked(path[-1], value)), _source(path, written)))

    for field in Settings.model_fields:
        value = getattr(settings, field)
        if field == "providers" and value:
            for provider, config in sorted(value.items()):
                for key in ProviderSettings.model_fields:
                    add(("providers", provider, key), getattr(config, key))
        else:
            add((field,), value)
    return lines


@config_app.command("check")
def check(
    connect: bool = typer.Option(
        False, "--connect", help="Also connect to the database and write to the bucket."
    ),
) -> None:
    """Print the effective configuration (secrets masked) and where each value came from.

    Exits with one line naming the setting: status 2 when a name or a value is wrong, 1 when
    ``--connect`` finds the database or the bucket unreachable.
    """
    settings = checked_settings(database=connect, storage=connect)
    environ = dict(os.environ)
    path = config_file_path(environ)
    toml = read_config_file(environ)
    found = "read" if path.is_file() else "not present"
    typer.echo(f"# config file: {path} ({found}); sources: env > toml > default")
    for name, value, source in effective_configuration(settings, environ, toml):
        typer.echo(f"{name}={value}  # {source}")
    if connect:
        typer.echo("# database and storage answered")
