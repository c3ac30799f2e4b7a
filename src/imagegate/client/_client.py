"""``Client`` and ``AsyncClient``: the same resources, blocking or awaitable.

    from imagegate.client import Client

    with Client("http://127.0.0.1:8000", api_key="ig_test_…") as client:
        job = client.images.generate(model="flux-2-pro", prompt="a lighthouse",
                                     params={"seed": 7}, wait=True)
        print(job.images)

Every method's work (the request, retries, polling, parsing) is a plan in ``_core``; the
classes here only run it, with ``run_sync`` or ``run_async``. The base URL and key default to
``IMAGEGATE_URL`` and ``IMAGEGATE_API_KEY``.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx2

from imagegate.client._core import (
    DEFAULT_BASE_URL,
    Core,
    Plan,
    PollPolicy,
    RetryPolicy,
    run_async,
    run_sync,
)
from imagegate.client._types import Download, Job, JobPage, Me, Model, Upload

__all__ = ["AsyncClient", "Client"]

T = TypeVar("T")
ProgressCallback = Callable[[Job], None]


def _core(
    base_url: str | None, api_key: str | None, max_retries: int, poll_interval: float
) -> Core:
    return Core(
        base_url or os.environ.get("IMAGEGATE_URL") or DEFAULT_BASE_URL,
        api_key if api_key is not None else os.environ.get("IMAGEGATE_API_KEY"),
        RetryPolicy(max_retries=max_retries),
        PollPolicy(initial=poll_interval),
    )


def _jobs_query(**query: Any) -> dict[str, Any]:
    return {k: v for k, v in query.items() if v is not None}


class Client:
    """A blocking client. ``max_retries`` applies to reads and keyed submits (429, 5xx,
    connection failures); ``poll_interval`` is ``jobs.wait``'s first pause."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 2,
        poll_interval: float = 0.5,
        transport: httpx2.BaseTransport | None = None,
    ) -> None:
        self._core = _core(base_url, api_key, max_retries, poll_interval)
        self._http = httpx2.Client(timeout=timeout, transport=transport)
        self.images = Images(self)
        self.jobs = Jobs(self)
        self.uploads = Uploads(self)
        self.models = Models(self)
        self.webhooks = Webhooks(self)

    @property
    def base_url(self) -> str:
        return self._core.base_url

    def _run(self, plan: Plan[T]) -> T:
        return run_sync(self._http, self._core, plan)

    def me(self) -> Me:
        """The account behind the key, its credits, and the key itself."""
        return self._run(self._core.me())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class Images:
    def __init__(self, client: Client) -> None:
        self._run = client._run
        self._core = client._core

    def generate(
        self,
        *,
        model: str,
        prompt: str,
        params: Mapping[str, Any] | None = None,
        webhook_url: str | None = None,
        webhook_events: list[str] | None = None,
        idempotency_key: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        wait: bool | float = False,
        on_progress: ProgressCallback | None = None,
    ) -> Job:
        """Queue a job. ``params`` is the model's params object (sent under its own key,
        ``fluxParams``, ``gptImageParams``, …). ``wait=True`` (or a number of seconds) follows
        the job (as ``jobs.wait``) until it ends and returns it finished; otherwise the job is
        returned ``QUEUED``. One ``Idempotency-Key`` (yours, or a fresh UUID) covers every
        retry of this call."""
        return self._run(
            self._core.generate(
                model=model,
                prompt=prompt,
                params=params,
                webhook_url=webhook_url,
                webhook_events=webhook_events,
                idempotency_key=idempotency_key,
                extra_body=extra_body,
                wait=wait,
                on_progress=on_progress,
            )
        )

    def midjourney_action(
        self,
        action: str,
        parent_job_id: str,
        *,
        fields: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        wait: bool | float = False,
        on_progress: ProgressCallback | None = None,
    ) -> Job:
        """A Midjourney follow-up (``upsample``, ``variation``, ``inpaint``, ``outpaint``,
        ``pan``) as a new job; ``fields`` carries its own fields: ``{"index": 2}``, …"""
        return self._run(
            self._core.midjourney_action(
                action=action,
                parent_job_id=parent_job_id,
                fields=fields,
                idempotency_key=idempotency_key,
                wait=wait,
                on_progress=on_progress,
            )
        )

    def download(self, url: str) -> Download:
        """The bytes of a result URL and their content type."""
        return self._run(self._core.download(url))


class Jobs:
    def __init__(self, client: Client) -> None:
        self._run = client._run
        self._core = client._core

    def get(self, job_id: str) -> Job:
        return self._run(self._core.get_job(job_id))

    def list(
        self,
        *,
        status: str | None = None,
        model: str | None = None,
        search: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JobPage:
        """One page, newest first; ``page.next_cursor`` asks for the next."""
        query = _jobs_query(status=status, model=model, search=search, limit=limit, cursor=cursor)
        return self._run(self._core.list_jobs(query))

    def iterate(
        self,
        *,
        status: str | None = None,
        model: str | None = None,
        search: str | None = None,
        page_size: int = 100,
    ) -> Iterator[Job]:
        """Every matching job, newest first, fetching pages as the loop needs them."""
        cursor: str | None = None
        while True:
            page = self.list(
                status=status, model=model, search=search, limit=page_size, cursor=cursor
            )
            yield from page.jobs
            if not (page.has_more and page.next_cursor):
                return
            cursor = page.next_cursor

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job (refunded); ``ConflictError`` once it has ended."""
        return self._run(self._core.cancel_job(job_id))

    def wait(
        self,
        job_id: str,
        *,
        timeout: float = 600.0,
        on_progress: ProgressCallback | None = None,
    ) -> Job:
        """Follow the job until it ends, on its live event stream when the gateway offers one,
        else by polling with back-off; ``on_progress`` sees each new status or progress.
        Raises ``JobTimeoutError`` (a ``TimeoutError``) after ``timeout`` seconds."""
        return self._run(self._core.wait(job_id, timeout=timeout, on_progress=on_progress))


class Uploads:
    def __init__(self, client: Client) -> None:
        self._run = client._run
        self._core = client._core

    def create(self, source: str | Path | bytes, *, filename: str | None = None) -> Upload:
        """Store an input image (a path or its bytes) for two hours; pass ``upload.url``."""
        return self._run(self._core.upload(source, filename))


class Models:
    def __init__(self, client: Client) -> None:
        self._run = client._run
        self._core = client._core

    def list(self) -> builtins.list[Model]:
        return self._run(self._core.list_models())

    def get(self, model_id: str) -> Model:
        """One model, with the JSON Schema of its params object in ``params_schema``."""
        return self._run(self._core.get_model(model_id))


class Webhooks:
    def __init__(self, client: Client) -> None:
        self._run = client._run
        self._core = client._core

    def deliveries(self, job_id: str) -> dict[str, Any]:
        """The job's webhook deliveries, each with its attempts."""
        return self._run(self._core.webhook_deliveries(job_id))

    def redeliver(self, job_id: str) -> dict[str, Any]:
        """Queue the job's last ``completed``/``failed`` event again (same ``webhook-id``)."""
        return self._run(self._core.redeliver_webhook(job_id))


class AsyncClient:
    """The same resources as ``Client``; every method is awaited (``iterate`` is ``async for``).
    ``on_progress`` callbacks are plain functions, called from the event loop."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 2,
        poll_interval: float = 0.5,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self._core = _core(base_url, api_key, max_retries, poll_interval)
        self._http = httpx2.AsyncClient(timeout=timeout, transport=transport)
        self.images = AsyncImages(self)
        self.jobs = AsyncJobs(self)
        self.uploads = AsyncUploads(self)
        self.models = AsyncModels(self)
        self.webhooks = AsyncWebhooks(self)

    @property
    def base_url(self) -> str:
        return self._core.base_url

    async def _run(self, plan: Plan[T]) -> T:
        return await run_async(self._http, self._core, plan)

    async def me(self) -> Me:
        return await self._run(self._core.me())

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()


class AsyncImages:
    def __init__(self, client: AsyncClient) -> None:
        self._run = client._run
        self._core = client._core

    async def generate(
        self,
        *,
        model: str,
        prompt: str,
        params: Mapping[str, Any] | None = None,
        webhook_url: str | None = None,
        webhook_events: list[str] | None = None,
        idempotency_key: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        wait: bool | float = False,
        on_progress: ProgressCallback | None = None,
    ) -> Job:
        """See ``Images.generate``."""
        return await self._run(
            self._core.generate(
                model=model,
                prompt=prompt,
                params=params,
                webhook_url=webhook_url,
                webhook_events=webhook_events,
                idempotency_key=idempotency_key,
                extra_body=extra_body,
                wait=wait,
                on_progress=on_progress,
            )
        )

    async def midjourney_action(
        self,
        action: str,
        parent_job_id: str,
        *,
        fields: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        wait: bool | float = False,
        on_progress: ProgressCallback | None = None,
    ) -> Job:
        """See ``Images.midjourney_action``."""
        return await self._run(
            self._core.midjourney_action(
                action=action,
                parent_job_id=parent_job_id,
                fields=fields,
                idempotency_key=idempotency_key,
                wait=wait,
                on_progress=on_progress,
            )
        )

    async def download(self, url: str) -> Download:
        return await self._run(self._core.download(url))


class AsyncJobs:
    def __init__(self, client: AsyncClient) -> None:
        self._run = client._run
        self._core = client._core

    async def get(self, job_id: str) -> Job:
        return await self._run(self._core.get_job(job_id))

    async def list(
        self,
        *,
        status: str | None = None,
        model: str | None = None,
        search: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JobPage:
        query = _jobs_query(status=status, model=model, search=search, limit=limit, cursor=cursor)
        return await self._run(self._core.list_jobs(query))

    async def iterate(
        self,
        *,
        status: str | None = None,
        model: str | None = None,
        search: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Job]:
        cursor: str | None = None
        while True:
            page = await self.list(
                status=status, model=model, search=search, limit=page_size, cursor=cursor
            )
            for job in page.jobs:
                yield job
            if not (page.has_more and page.next_cursor):
                return
            cursor = page.next_cursor

    async def cancel(self, job_id: str) -> Job:
        return await self._run(self._core.cancel_job(job_id))

    async def wait(
        self,
        job_id: str,
        *,
        timeout: float = 600.0,
        on_progress: ProgressCallback | None = None,
    ) -> Job:
        return await self._run(self._core.wait(job_id, timeout=timeout, on_progress=on_progress))


class AsyncUploads:
    def __init__(self, client: AsyncClient) -> None:
        self._run = client._run
        self._core = client._core

    async def create(self, source: str | Path | bytes, *, filename: str | None = None) -> Upload:
        return await self._run(self._core.upload(source, filename))


class AsyncModels:
    def __init__(self, client: AsyncClient) -> None:
        self._run = client._run
        self._core = client._core

    async def list(self) -> builtins.list[Model]:
        return await self._run(self._core.list_models())

    async def get(self, model_id: str) -> Model:
        return await self._run(self._core.get_model(model_id))


class AsyncWebhooks:
    def __init__(self, client: AsyncClient) -> None:
        self._run = client._run
        self._core = client._core

    async def deliveries(self, job_id: str) -> dict[str, Any]:
        return await self._run(self._core.webhook_deliveries(job_id))

    async def redeliver(self, job_id: str) -> dict[str, Any]:
        return await self._run(self._core.redeliver_webhook(job_id))
