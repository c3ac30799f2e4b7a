"""``imagegate``: run the gateway, administer it, and use it from a terminal."""

from __future__ import annotations

import typer

from imagegate.cli import admin, config, jobs, operations, server

__all__ = ["app", "main"]

app = typer.Typer(
    name="imagegate",
    help="Self-hosted image generation gateway (Apiframe v2 compatible).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
server.register(app)
admin.register(app)
jobs.register(app)
config.register(app)
operations.register(app)


def main() -> None:
    app()
