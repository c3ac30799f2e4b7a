"""What every adapter test builds the same way: input fetchers, requests, adapters on a fake.

An adapter under test reaches its fake vendor in-process: ``adapter_on`` hands the vendor's
``create_adapter`` a ``ProviderContext`` whose transport is an ``httpx2.ASGITransport`` onto the
fake app, on a fake clock, exactly as the composition root hands one to production adapters.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

import httpx2
import pytest
from PIL import Image
from pydantic import SecretStr

from imagegate.providers.port import (
    Finished,
    GenerationRequest,
    ProviderAdapter,
    ProviderContext,
    Submitted,
    TaskHandle,
)
from imagegate.settings import ProviderSettings
from imagegate.testing.clock import FakeClock
from imagegate.testing.fake_upstream.kit import RecordedRequest
from imagegate.types import FetchedInput, InputFetcher, Route
from tests.images import image_bytes

AdapterT = TypeVar("AdapterT", bound=ProviderAdapter)


def input_fetcher(data: bytes | None = None, content_type: str = "image/png") -> InputFetcher:
    """The gateway's input fetcher stand-in: every URL reads as ``data`` (a small PNG)."""
    body = data if data is not None else image_bytes()

    async def fetch_input(url: str) -> FetchedInput:
        return FetchedInput(data=body, content_type=content_type, url=url)

    return fetch_input


def adapter_on(
    create_adapter: Callable[[ProviderSettings, ProviderContext], AdapterT],
    app: Any,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    options: Mapping[str, Any] | None = None,
    fetch_input: InputFetcher | None = None,
    clock: FakeClock | None = None,
    transport: httpx2.AsyncBaseTransport | None = None,
) -> AdapterT:
    """An adapter built by the vendor's ``create_adapter``, talking to the fake ``app``.

    ``transport`` replaces the way to ``app`` (an ``httpx2.MockTransport`` that fails on purpose).
    """
    settings = ProviderSettings(
        api_key=SecretStr(api_key) if api_key is not None else None,
        base_url=base_url,
        options=dict(options or {}),
    )
    context = ProviderContext(
        fetch_input=fetch_input or input_fetcher(),
        transport=transport or httpx2.ASGITransport(app=app),
        clock=clock or FakeClock(),
    )
    return create_adapter(settings, context)


class Closing:
    """Adapters handed to it are closed when the test ends, however it ends."""

    def __init__(self, stack: contextlib.AsyncExitStack) -> None:
        self._stack = stack

    def __call__(self, adapter: AdapterT) -> AdapterT:
        self._stack.push_async_callback(adapter.aclose)
        return adapter


@pytest.fixture
async def closing() -> AsyncIterator[Closing]:
    async with contextlib.AsyncExitStack() as stack:
        yield Closing(stack)


def generation_request(
    model: str,
    route: Route,
    prompt: str,
    params: Mapping[str, Any] | None = None,
    *,
    outputs: int = 1,
    action: Mapping[str, Any] | None = None,
) -> GenerationRequest:
    """One job's request as the worker hands it to an adapter."""
    return GenerationRequest(
        job_id="job-1",
        model=model,
        route=route,
        prompt=prompt,
        params=dict(params) if params is not None else {},
        outputs=outputs,
        action=dict(action or {}),
    )


async def run_to_finish(
    adapter: ProviderAdapter,
    request: GenerationRequest,
    *,
    max_polls: int = 10,
    may_finish_at_submit: bool = False,
) -> Finished:
    """Submit, then poll as the worker would until the task finishes; fails past ``max_polls``.

    A task-queue vendor must answer the submit with a task to poll, unless
    ``may_finish_at_submit`` (Replicate's ``Prefer: wait``, DashScope's synchronous models).
    """
    submitted = await adapter.submit(request)
    if isinstance(submitted, Finished) and may_finish_at_submit:
        return submitted
    assert isinstance(submitted, Submitted)
    handle = TaskHandle(submitted.task_id, submitted.state)
    for _ in range(max_polls):
        polled = await adapter.poll(request, handle)
        if isinstance(polled, Finished):
            return polled
    raise AssertionError("the task never finished")


async def download(app: Any, url: str | None) -> Image.Image:
    """A result URL the fake ``app`` serves, fetched and opened (it must answer 200)."""
    assert url is not None
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app)) as client:
        response = await client.get(url)
    assert response.status_code == 200
    return Image.open(io.BytesIO(response.content))


def received(fake: Any) -> list[RecordedRequest]:
    """Every request the fake vendor app recorded, in order."""
    requests: list[RecordedRequest] = fake.state.requests
    return requests


def opened(result: Finished) -> list[Image.Image]:
    """The images an adapter returned inline, each opened (each must carry its bytes)."""
    pictures: list[Image.Image] = []
    for image in result.images:
        assert image.data is not None
        pictures.append(Image.open(io.BytesIO(image.data)))
    return pictures
