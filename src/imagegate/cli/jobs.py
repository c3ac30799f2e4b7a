"""Using a running gateway from the terminal, through the SDK: ``generate`` and ``jobs``.

Nothing here reads the server's catalog or database: a model's params key comes from
``GET /v2/models/{id}``. Every failure the SDK can name (gateway unreachable, bad key,
validation, no credits, a failed job) is one line on stderr and a non-zero exit: 1 for an
answer or job that went wrong, 2 for a usage mistake, 130 when interrupted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from imagegate.client import Client, ImagegateError, Job

__all__ = ["register"]

console = Console()
progress_console = Console(stderr=True)
jobs_app = typer.Typer(help="Jobs on a running gateway.")

UrlOption = typer.Option(
    None, "--url", help="Gateway URL (default IMAGEGATE_URL or http://127.0.0.1:8000)."
)
KeyOption = typer.Option(None, "--key", help="API key (default IMAGEGATE_API_KEY).")
JsonOption = typer.Option(False, "--json", help="Print the job as JSON, for scripts.")
OutputOption = typer.Option(
    None, "--output", "-o", help="Save the images into this directory (implies --wait)."
)
TimeoutOption = typer.Option(600.0, "--timeout", help="Seconds to wait for the job.")


def register(app: typer.Typer) -> None:
    app.command()(generate)
    app.add_typer(jobs_app, name="jobs")


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr, then exit ``code``: what a user sees instead of a traceback."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def reporting() -> Iterator[None]:
    """Turn the SDK's errors and Ctrl-C into one line on stderr and an exit status."""
    try:
        yield
    except ImagegateError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted (a submitted job goes on running on the gateway)", 130)


def _client(url: str | None, key: str | None) -> Client:
    key = key or os.environ.get("IMAGEGATE_API_KEY")
    if not key:
        fail("pass --key or set IMAGEGATE_API_KEY", 2)
    try:
        return Client(url, key)
    except ValueError as exc:
        fail(str(exc), 2)


def parse_params(pairs: list[str], params_file: Path | None) -> dict[str, Any]:
    """``--params-file`` first, then each ``--param NAME=VALUE`` over it. A VALUE that parses
    as JSON is taken as JSON (``n=2`` is a number, ``tags=["a"]`` a list), else as text."""
    params: dict[str, Any] = {}
    if params_file is not None:
        try:
            loaded = json.loads(params_file.read_text())
        except (OSError, ValueError) as exc:
            fail(f"cannot read --params-file {params_file}: {exc}", 2)
        if not isinstance(loaded, dict):
            fail(f"--params-file {params_file} must hold a JSON object", 2)
        params.update(loaded)
    for text in pairs:
        name, sep, raw = text.partition("=")
        if not sep or not name:
            fail(f"--param expects NAME=VALUE, got {text!r}", 2)
        try:
            params[name] = json.loads(raw)
        except json.JSONDecodeError:
            params[name] = raw
    return params


def generate(
    model: str = typer.Argument(..., help="Model id (see `imagegate models`)."),
    prompt: str = typer.Argument(..., help="The prompt."),
    param: list[str] = typer.Option([], "--param", "-p", help="A model param, NAME=VALUE."),
    params_file: Path | None = typer.Option(
        None, "--params-file", help="A JSON file with the model's params object."
    ),
    wait: bool = typer.Option(False, "--wait", "-w", help="Wait for the job, showing progress."),
    output: Path | None = OutputOption,
    webhook_url: str | None = typer.Option(None, "--webhook-url", help="Where to POST events."),
    as_json: bool = JsonOption,
    timeout: float = TimeoutOption,
    url: str | None = UrlOption,
    key: str | None = KeyOption,
) -> None:
    """Submit a generation job; with --wait or -o, follow it and save its images.

    Prints the job id (or, with --json, the job) on stdout; progress goes to stderr.
    """
    params = parse_params(param, params_file)
    with _client(url, key) as client, reporting():
        job = client.images.generate(
            model=model,
            prompt=prompt,
            params=params or None,
            webhook_url=webhook_url,
        )
        if not (wait or output is not None):
            typer.echo(json.dumps(job.raw) if as_json else job.id)
            return
        if not as_json:
            typer.echo(job.id)
        _follow(client, job.id, output, as_json, timeout)


@jobs_app.command("watch")
def jobs_watch(
    job_id: str,
    output: Path | None = OutputOption,
    as_json: bool = JsonOption,
    timeout: float = TimeoutOption,
    url: str | None = UrlOption,
    key: str | None = KeyOption,
) -> None:
    """Follow a job to its end with a progress bar; exit non-zero unless it completed."""
    with _client(url, key) as client, reporting():
        _follow(client, job_id, output, as_json, timeout)


def _follow(
    client: Client, job_id: str, output: Path | None, as_json: bool, timeout: float
) -> None:
    job = _wait_with_progress(client, job_id, timeout, show=not as_json)
    files = _save(client, job, output) if output is not None and job.status == "COMPLETED" else []
    if as_json:
        typer.echo(json.dumps({**job.raw, "files": [str(f) for f in files]} if files else job.raw))
    else:
        for path in files:
            console.print(f"saved {path}")
        if job.status == "COMPLETED":  # the bar is not drawn when stderr is not a terminal
            progress_console.print(f"{job.id} COMPLETED")
    if job.status != "COMPLETED":
        fail(f"job {job.id} {job.status}" + (f": {job.error}" if job.error else ""))


def _wait_with_progress(client: Client, job_id: str, timeout: float, *, show: bool) -> Job:
    first = client.jobs.get(job_id)  # an unknown id fails here, before a bar is drawn
    if first.done or not show:
        return first if first.done else client.jobs.wait(job_id, timeout=timeout)
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=progress_console) as progress:
        task: TaskID = progress.add_task(first.status, total=100, completed=first.progress)

        def update(job: Job) -> None:
            progress.update(task, completed=job.progress, description=job.status)

        return client.jobs.wait(job_id, timeout=timeout, on_progress=update)


def _save(client: Client, job: Job, directory: Path) -> list[Path]:
    """Each image as ``<job id>-<n><ext>``, the extension from its content type."""
    directory.mkdir(parents=True, exist_ok=True)
    saved = []
    for index, image_url in enumerate(job.images, start=1):
        download = client.images.download(image_url)
        path = directory / f"{job.id}-{index}{download.extension}"
        path.write_bytes(download.content)
        saved.append(path)
    return saved


@jobs_app.command("list")
def jobs_list(
    status: str | None = typer.Option(None, help="QUEUED, PROCESSING, COMPLETED, …"),
    model: str | None = typer.Option(None),
    limit: int = typer.Option(20, help="How many jobs, newest first."),
    as_json: bool = typer.Option(False, "--json", help="One JSON job per line."),
    url: str | None = UrlOption,
    key: str | None = KeyOption,
) -> None:
    """The newest jobs, across as many pages as ``--limit`` needs."""
    with _client(url, key) as client, reporting():
        jobs: list[Job] = []
        for job in client.jobs.iterate(status=status, model=model, page_size=min(limit, 100)):
            jobs.append(job)
            if len(jobs) >= limit:
                break
    if as_json:
        for job in jobs:
            typer.echo(json.dumps(job.raw))
        return
    # The id is what a reader copies into ``jobs get``/``watch``/``cancel``: never cut short,
    # whatever the terminal's width; a long model id wraps instead. At 80 columns the rest fits
    # beside it: progress shows in the status while it means something, the year is left out.
    table = Table(
        Column("id", no_wrap=True, min_width=36),
        Column("model", overflow="fold"),
        Column("status", no_wrap=True),
        Column("credits", no_wrap=True),
        Column("created UTC", no_wrap=True),
        box=None,
        padding=(0, 1, 0, 0),
        pad_edge=False,
    )
    for job in jobs:
        running = job.status in {"QUEUED", "PROCESSING"} and job.progress
        status = f"{job.status} {job.progress}%" if running else job.status
        created = (job.created_at or "")[5:16].replace("T", " ")
        table.add_row(job.id, job.model, status, str(job.credit_cost), created)
    console.print(table)


@jobs_app.command("get")
def jobs_get(job_id: str, url: str | None = UrlOption, key: str | None = KeyOption) -> None:
    """The job as JSON."""
    with _client(url, key) as client, reporting():
        typer.echo(json.dumps(client.jobs.get(job_id).raw, indent=2))


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, url: str | None = UrlOption, key: str | None = KeyOption) -> None:
    """Cancel a queued or running job; its credits are refunded."""
    with _client(url, key) as client, reporting():
        job = client.jobs.cancel(job_id)
    console.print(f"{job.id}: {job.status}")
