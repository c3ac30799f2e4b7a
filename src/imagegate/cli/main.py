"""``imagegate``: run the gateway, administer it, and use it from a terminal.

The commands that use a gateway from a terminal (``generate``, ``jobs``) need only the SDK; when
one of them is asked for, the server side (FastAPI, SQLAlchemy, the catalog) is not imported,
which makes them start in a fraction of the time.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from imagegate.cli import jobs

__all__ = ["CLIENT_COMMANDS", "client_app", "full_app", "main"]

CLIENT_COMMANDS = frozenset({"generate", "jobs"})
"""Commands that talk to a gateway through the SDK only."""

_SETTINGS: dict[str, Any] = {
    "name": "imagegate",
    "help": "Self-hosted image generation gateway (Apiframe v2 compatible).",
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_show_locals": False,
}


def full_app() -> typer.Typer:
    """Every command: the gateway, its administration, and the client commands."""
    from imagegate.cli import admin, config, operations, server

    full = typer.Typer(**_SETTINGS)
    server.register(full)
    admin.register(full)
    jobs.register(full)
    config.register(full)
    operations.register(full)
    return full


def client_app() -> typer.Typer:
    """The client commands alone (``imagegate generate …``, ``imagegate jobs …``)."""
    client = typer.Typer(**_SETTINGS)
    jobs.register(client)
    return client


def __getattr__(name: str) -> Any:
    # ``app`` (every command) is built when first asked for, not when ``main`` is imported.
    if name == "app":
        globals()["app"] = built = full_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    if sys.argv[1:2] and sys.argv[1] in CLIENT_COMMANDS:
        client_app()()
    else:
        full_app()()
