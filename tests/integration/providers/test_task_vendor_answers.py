"""Malformed, empty and lost answers, and timeouts, for the six task-queue adapters.

Every vendor is replaced by an ``httpx2.MockTransport`` that answers every request the same way,
so each case pins one rule of the error taxonomy (documented in each adapter's docstring):

- A **submit** is a paid POST that was sent. An answer we cannot read (not JSON, the wrong
  shape, an empty 200) leaves no task id to poll, yet the vendor may have accepted and billed
  it: ``UpstreamRejected``, never retried. The same holds for a read timeout after sending;
  a connect error means nothing was sent, so it is ``UpstreamRetryable``.
- A **poll** is an idempotent GET. An unreadable answer (a proxy's HTML page, a truncated
  body) is ``UpstreamRetryable``: the next poll asks again, bounded by the job deadline.
  Midjourney relays answer an unknown task with an empty 200 (``null``), so there an empty
  body is ``UpstreamTaskLost``.
- A vendor saying "done" **without images** is ``UpstreamRejected``: asking again cannot make
  images appear, and the job is refunded.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr

from imagegate.errors import (
    UpstreamError,
    UpstreamRejected,
    UpstreamRetryable,
    UpstreamTaskLost,
)
from imagegate.providers import bfl, dashscope, fal, kling, midjourney, replicate
from imagegate.providers.port import GenerationRequest, ProviderAdapter, ProviderContext, TaskHandle
from imagegate.settings import ProviderSettings
from imagegate.testing.clock import FakeClock
from imagegate.types import FetchedInput
from tests.integration.providers.routes import catalog_route

Handler = Callable[[httpx2.Request], httpx2.Response]


async def _no_inputs(url: str) -> FetchedInput:
    raise AssertionError(f"no input image expected, got {url}")


@dataclass(frozen=True)
class Vendor:
    """How to build one adapter, one request for it, and a task handle to poll."""

    name: str
    module: Any
    settings: ProviderSettings
    route: str
    task: TaskHandle
    done_without_images: Any
    """A poll answer in which the vendor says the task finished but lists no image."""

    def request(self) -> GenerationRequest:
        return GenerationRequest(
            job_id="job-1",
            model=self.route,
            route=catalog_route(self.name, self.route),
            prompt="a lighthouse at dawn",
            params={},
        )

    def adapter(self, transport: httpx2.AsyncBaseTransport) -> ProviderAdapter:
        context = ProviderContext(fetch_input=_no_inputs, transport=transport, clock=FakeClock())
        adapter: ProviderAdapter = self.module.create_adapter(self.settings, context)
        return adapter


def _key(value: str, **settings: Any) -> ProviderSettings:
    return ProviderSettings(api_key=SecretStr(value), **settings)


FAL_QUEUE = "https://queue.fal.run/fal-ai/flux-2-pro/requests/r1"

VENDORS = [
    Vendor(
        "bfl",
        bfl,
        _key("bfl_test_key"),
        "flux-2-pro",
        TaskHandle("t1", {"polling_url": "https://api.bfl.ai/v1/get_result?id=t1"}),
        {"id": "t1", "status": "Ready", "result": {"sample": None}},
    ),
    Vendor(
        "replicate",
        replicate,
        _key("r8_test_token"),
        "black-forest-labs/flux-2-pro",
        TaskHandle("p1", {}),
        {"id": "p1", "status": "succeeded", "output": None, "error": None},
    ),
    Vendor(
        "fal",
        fal,
        _key("fal_test_key"),
        "fal-ai/flux-2-pro",
        TaskHandle(
            "r1",
            {
                "status_url": f"{FAL_QUEUE}/status",
                "response_url": FAL_QUEUE,
                "cancel_url": f"{FAL_QUEUE}/cancel",
            },
        ),
        {"status": "COMPLETED", "images": [], "seed": 1},
    ),
    Vendor(
        "kling",
        kling,
        _key("ak-test:sk-test"),
        "kling-image",
        TaskHandle("t1", {"model_name": "kling-v1"}),
        {
            "code": 0,
            "message": "SUCCEED",
            "request_id": "q1",
            "data": {"task_id": "t1", "task_status": "succeed", "task_result": {"images": []}},
        },
    ),
    Vendor(
        "dashscope",
        dashscope,
        _key("sk-test"),
        "qwen-image",
        TaskHandle("t1", {"task_ids": ["t1"], "model": "qwen-image"}),
        {
            "request_id": "q1",
            "output": {"task_id": "t1", "task_status": "SUCCEEDED", "results": []},
        },
    ),
    Vendor(
        "midjourney",
        midjourney,
        _key("test-secret", base_url="https://mj-relay.imagegate.test"),
        "midjourney",
        TaskHandle("t1", {"action": "IMAGINE"}),
        {"id": "t1", "action": "IMAGINE", "status": "SUCCESS", "imageUrl": None},
    ),
]
VENDOR_IDS = [vendor.name for vendor in VENDORS]

MALFORMED = {
    "html": (b"<html><body>502 Bad Gateway</body></html>", "text/html"),
    "truncated-json": (b'{"id": "t1", "status": ', "application/json"),
    "json-array": (b'["t1"]', "application/json"),
    "json-string": (b'"ok"', "application/json"),
    "wrong-object": (b'{"unexpected": true}', "application/json"),
}
"""HTTP 200 answers no vendor documents: each must raise an ``UpstreamError``, never crash."""


def _answer(body: bytes, content_type: str) -> Handler:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": content_type})

    return handler


def _raising(exc_type: type[httpx2.TransportError]) -> Handler:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise exc_type("simulated", request=request)

    return handler


@contextlib.asynccontextmanager
async def _adapter(vendor: Vendor, handler: Handler) -> AsyncIterator[ProviderAdapter]:
    adapter = vendor.adapter(httpx2.MockTransport(handler))
    try:
        yield adapter
    finally:
        await adapter.aclose()


async def _submit(vendor: Vendor, handler: Handler) -> UpstreamError:
    async with _adapter(vendor, handler) as adapter:
        with pytest.raises(UpstreamError) as caught:
            await adapter.submit(vendor.request())
        return caught.value
    raise AssertionError("unreachable")


async def _poll(vendor: Vendor, handler: Handler) -> UpstreamError:
    async with _adapter(vendor, handler) as adapter:
        with pytest.raises(UpstreamError) as caught:
            await adapter.poll(vendor.request(), vendor.task)
        return caught.value
    raise AssertionError("unreachable")


@pytest.mark.parametrize("vendor", VENDORS, ids=VENDOR_IDS)
@pytest.mark.parametrize("kind", list(MALFORMED))
async def test_malformed_submit_answer_is_rejected_not_retried(vendor: Vendor, kind: str) -> None:
    error = await _submit(vendor, _answer(*MALFORMED[kind]))
    assert type(error) is UpstreamRejected, error
    assert error.provider == vendor.name
    assert vendor.name in error.message


@pytest.mark.parametrize("vendor", VENDORS, ids=VENDOR_IDS)
async def test_empty_submit_answer_is_rejected_not_retried(vendor: Vendor) -> None:
    error = await _submit(vendor, _answer(b"", "application/json"))
    assert type(error) is UpstreamRejected, error
    assert vendor.name in error.message


@pytest.mark.parametrize("vendor", VENDORS, ids=VENDOR_IDS)
@pytest.mark.parametrize("kind", list(MALFORMED))
async def test_malformed_poll_answer_is_retryable(vendor: Vendor, kind: str) -> None:
    error = await _poll(vendor, _answer(*MALFORMED[kind]))
    assert isinstance(error, UpstreamRetryable), error
    assert vendor.name in error.message


@pytest.mark.parametrize("vendor", VENDORS, ids=VENDOR_IDS)
async def test_empty_poll_answer(vendor: Vendor) -> None:
    error = await _poll(vendor, _answer(b"", "application/json"))
    if vendor.name == "midjourney":
        # midjourney-proxy serializes an unknown task as ``null``: an empty 200.
        assert isinstance(error, UpstreamTaskLost), error
    else:
        assert isinstance(error, UpstreamRetryable), error


@pytest.mark.parametrize("vendor", VENDORS, ids=VENDOR_IDS)
async def test_finished_without_images_is_rejected(vendor: Vendor) -> None:
    body = json.dumps(vendor.done_without_images).encode()
    error = await _poll(vendor, _answer(body, "application/json"))
    assert type(error) is UpstreamRejected, error
    assert vendor.name in error.message


@pytest.mark.parametrize("vendor", VENDORS, ids=VENDOR_IDS)
async def test_read_timeout_after_submit_is_rejected(vendor: Vendor) -> None:
    error = await _submit(vendor, _raising(httpx2.ReadTimeout))
    assert type(error) is UpstreamRejected, error
    assert "may already have charged" in error.message


@pytest.mark.parametrize("vendor", VENDORS, ids=VENDOR_IDS)
@pytest.mark.parametrize("exc_type", [httpx2.ConnectError, httpx2.ConnectTimeout])
async def test_connect_failure_on_submit_is_retryable(
    vendor: Vendor, exc_type: type[httpx2.TransportError]
) -> None:
    error = await _submit(vendor, _raising(exc_type))
    assert isinstance(error, UpstreamRetryable), error


@pytest.mark.parametrize("vendor", VENDORS, ids=VENDOR_IDS)
async def test_read_timeout_on_poll_is_retryable(vendor: Vendor) -> None:
    error = await _poll(vendor, _raising(httpx2.ReadTimeout))
    assert isinstance(error, UpstreamRetryable), error
