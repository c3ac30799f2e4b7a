"""Polling cadence: the ``poll_after`` each adapter returns follows its vendor's advice.

Each case runs a slow task (the ``slow`` prompt word) against the vendor's fake and records the
wait the adapter asks for after the submit and after every pending poll:

- BFL advises polling every 0.5–2 s with backoff: 0.5 s, then doubling, capped at 2 s.
- DashScope's SDK polls after 1 s, doubling to 5 s.
- Midjourney relays advise 2–5 s: a steady 4 s.
- Replicate, fal and Kling publish no cadence: Replicate 2 s while ``starting`` and 1 s once
  ``processing`` (predictions then finish within seconds), fal 2 s in the queue and 1 s in
  progress, Kling a steady 3 s (tasks take tens of seconds and report no progress).

The backoff count lives in the task state the worker persists, so a restarted worker resumes
the cadence instead of hammering the vendor from 0.5 s again.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr

from imagegate.providers import bfl, dashscope, fal, kling, midjourney, replicate
from imagegate.providers.port import (
    Finished,
    GenerationRequest,
    Pending,
    ProviderAdapter,
    ProviderContext,
    Submitted,
    TaskHandle,
)
from imagegate.settings import ProviderSettings
from imagegate.testing.fake_upstream import create_app
from imagegate.types import FetchedInput
from tests.integration.providers.routes import catalog_route


async def _no_inputs(url: str) -> FetchedInput:
    raise AssertionError(f"no input image expected, got {url}")


VENDORS: dict[str, tuple[Any, str, str, str]] = {
    "bfl": (bfl, "bfl_test_key", "https://api.bfl.ai", "flux-2-pro"),
    "dashscope": (dashscope, "sk-test", "https://dashscope-intl.aliyuncs.com", "qwen-image"),
    "fal": (fal, "fal_test_key", "https://queue.fal.run", "fal-ai/flux-2-pro"),
    "kling": (kling, "ak-test:sk-test", "https://api-singapore.klingai.com", "kling-image"),
    "midjourney": (midjourney, "test-secret", "https://mj-relay.imagegate.test", "midjourney"),
    "replicate": (
        replicate,
        "r8_test_token",
        "https://api.replicate.com/v1",
        "black-forest-labs/flux-2-pro",
    ),
}


def _request(vendor: str) -> GenerationRequest:
    model = VENDORS[vendor][3]
    return GenerationRequest("job-1", model, catalog_route(vendor, model), "slow lighthouse", {})


@contextlib.asynccontextmanager
async def _adapter(vendor: str, **options: Any) -> AsyncIterator[ProviderAdapter]:
    module, key, base_url, _model = VENDORS[vendor]
    settings = ProviderSettings(api_key=SecretStr(key), base_url=base_url, options=options)
    # Kling's JWT is checked against the wall clock by its fake: the adapter uses it too.
    transport = httpx2.ASGITransport(app=create_app(vendor))
    context = ProviderContext(fetch_input=_no_inputs, transport=transport)
    adapter: ProviderAdapter = module.create_adapter(settings, context)
    try:
        yield adapter
    finally:
        await adapter.aclose()


async def _cadence(adapter: ProviderAdapter, request: GenerationRequest) -> list[float]:
    """``poll_after`` of the submit and of every pending poll, carrying state as the worker does."""
    submitted = await adapter.submit(request)
    assert isinstance(submitted, Submitted)
    waits = [submitted.poll_after]
    handle = TaskHandle(submitted.task_id, submitted.state)
    for _ in range(10):
        polled = await adapter.poll(request, handle)
        if isinstance(polled, Finished):
            return waits
        assert isinstance(polled, Pending)
        waits.append(polled.poll_after)
        if polled.state is not None:
            handle = TaskHandle(handle.task_id, polled.state)
    raise AssertionError("the task never finished")


EXPECTED = {
    "bfl": [0.5, 1.0, 2.0, 2.0],
    "dashscope": [1.0, 2.0, 4.0],
    "midjourney": [4.0, 4.0, 4.0, 4.0],
    "replicate": [2.0, 1.0, 1.0, 1.0],
    "fal": [2.0, 2.0, 1.0, 1.0],
    "kling": [3.0, 3.0, 3.0, 3.0],
}


@pytest.mark.parametrize("vendor", list(EXPECTED))
async def test_poll_cadence_follows_vendor_advice(vendor: str) -> None:
    async with _adapter(vendor) as adapter:
        assert await _cadence(adapter, _request(vendor)) == EXPECTED[vendor]


@pytest.mark.parametrize(("vendor", "cap"), [("bfl", 2.0), ("dashscope", 5.0)])
async def test_backoff_resumes_from_persisted_state_and_stays_capped(
    vendor: str, cap: float
) -> None:
    """A worker restarted after many polls resumes at the cap, not at the first interval."""
    request = _request(vendor)
    async with _adapter(vendor) as adapter:
        submitted = await adapter.submit(request)
        assert isinstance(submitted, Submitted)
        restored = TaskHandle(submitted.task_id, {**submitted.state, "polls": 40})
        polled = await adapter.poll(request, restored)
        assert isinstance(polled, Pending)
        assert polled.poll_after == cap
        assert polled.state is not None and polled.state["polls"] == 41
        # Everything else the adapter needs to poll is kept.
        assert {k: v for k, v in polled.state.items() if k != "polls"} == dict(submitted.state)


@pytest.mark.parametrize(("vendor", "first"), [("bfl", 0.5), ("dashscope", 1.0)])
async def test_poll_interval_option_caps_the_backoff(vendor: str, first: float) -> None:
    async with _adapter(vendor, poll_interval=first * 2) as adapter:
        waits = await _cadence(adapter, _request(vendor))
    assert waits[0] == first
    assert waits[1:] and all(wait == first * 2 for wait in waits[1:])
