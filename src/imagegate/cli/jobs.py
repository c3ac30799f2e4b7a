"""Using a running gateway from the terminal: ``generate`` and ``jobs``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from imagegate.catalog import build_catalog
from imagegate.client._client import ApiError, Client

__all__ = ["register"]

console = Console()
jobs_app = typer.Typer(help="Jobs on a running gateway.")

UrlOption = typer.Option(
    None, "--url", help="Gateway URL (default IMAGEGATE_URL or http://127.0.0.1:8000)."
)
KeyOption = typer.Option(None, "--key", help="API key (default IMAGEGATE_API_KEY).")


def register(app: typer.Typer) -> None:
    app.command()(generate)
    app.add_typer(jobs_app, name="jobs")


def _client(url: str | None, key: str | None) -> Client:
    key = key or os.environ.get("IMAGEGATE_API_KEY")
    if not key:
        console.print("[red]error:[/] pass --key or set IMAGEGATE_API_KEY")
        raise typer.Exit(2)
    return Client(url or os.environ.get("IMAGEGATE_URL", "http://127.0.0.1:8000"), key)


def _parse_param(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise typer.BadParameter(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(raw)
    except json.JSONDecodeError:
        return name, raw


def generate(
    model: str,
    prompt: str,
    param: list[str] = typer.Option([], "--param", "-p", help="A model param, NAME=VALUE."),
    wait: bool = typer.Option(False, "--wait", "-w", help="Wait, show progress, save images."),
    output: Path = typer.Option(Path("."), "--output", "-o", help="Where --wait saves images."),
    url: str | None = UrlOption,
    key: str | None = KeyOption,
) -> None:
    """Submit a generation job (and with --wait, save its images)."""
    spec = build_catalog().get(model)
    if spec is None:
        console.print(f"[red]error:[/] unknown model {model!r} (see `imagegate models`)")
        raise typer.Exit(2)
    params = dict(_parse_param(p) for p in param)
    extra = {spec.params_key: params} if params else {}
    with _client(url, key) as client:
        try:
            job_id = client.generate(model, prompt, fields=extra)
        except ApiError as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(1) from None
        typer.echo(job_id)
        if not wait:
            return
        job = _wait_with_progress(client, job_id)
        if job["status"] != "COMPLETED":
            console.print(f"[red]{job['status']}:[/] {job.get('error')}")
            raise typer.Exit(1)
        output.mkdir(parents=True, exist_ok=True)
        for image_url in job["result"]["images"]:
            name = f"{job_id}-{Path(urlsplit(image_url).path).name}"
            (output / name).write_bytes(client.download(image_url))
            console.print(f"saved {output / name}")


def _wait_with_progress(client: Client, job_id: str) -> dict[str, Any]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("QUEUED", total=100)

        def update(job: dict[str, Any]) -> None:
            progress.update(task, completed=job.get("progress") or 0, description=job["status"])

        return client.wait(job_id, on_update=update)


@jobs_app.command("list")
def jobs_list(
    status: str | None = typer.Option(None),
    model: str | None = typer.Option(None),
    limit: int = typer.Option(20),
    url: str | None = UrlOption,
    key: str | None = KeyOption,
) -> None:
    with _client(url, key) as client:
        page = client.jobs(status=status, model=model, limit=limit)
    table = Table("id", "model", "status", "progress", "credits", "created")
    for job in page["jobs"]:
        table.add_row(
            job["id"],
            job["model"],
            job["status"],
            str(job["progress"]),
            str(job["creditCost"]),
            job["createdAt"],
        )
    console.print(table)


@jobs_app.command("get")
def jobs_get(job_id: str, url: str | None = UrlOption, key: str | None = KeyOption) -> None:
    with _client(url, key) as client:
        try:
            typer.echo(json.dumps(client.job(job_id), indent=2))
        except ApiError as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(1) from None


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, url: str | None = UrlOption, key: str | None = KeyOption) -> None:
    with _client(url, key) as client:
        try:
            job = client.cancel(job_id)
        except ApiError as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(1) from None
    console.print(f"{job['id']}: {job['status']}")
