"""How the synchronous vendors' adapters treat answers that are not what the vendor documents.

OpenAI, xAI, Reve, Gemini, Ideogram and Ark all answer one paid POST with the images. Once that
POST was sent the vendor may have billed it, so every failure after sending is final for the job:

- a 200 whose body is not JSON, has the wrong shape, carries no image or an image that is not
  base64 is ``UpstreamRejected`` (the job fails and is refunded; retrying could pay twice and a
  vendor that answered garbage once usually does again). xAI is the one exception it documents
  itself: a 200 with ``data: []`` is its silent moderation, so it is ``UpstreamModerated``;
- a read timeout after the request was sent is ``UpstreamRejected`` for the same reason;
- a connection that never opened cost nothing and is ``UpstreamRetryable``.

The vendor is an ``httpx2.MockTransport`` here: these answers are exactly what the fakes in
``imagegate.testing`` are built never to send. The last test talks to the fakes instead: each
vendor's own 429 is ``UpstreamRateLimited`` (the worker waits without spending an attempt) with
the delay the vendor advised.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from imagegate.errors import (
    UpstreamError,
    UpstreamModerated,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamRetryable,
)
from imagegate.providers import registry
from imagegate.providers.port import GenerationRequest, ProviderAdapter, ProviderContext
from imagegate.settings import ProviderSettings
from imagegate.testing.clock import FakeClock
from imagegate.testing.vendors import VendorTransport, provider_settings
from imagegate.types import FetchedInput
from tests.integration.providers.routes import catalog_route


@dataclass(frozen=True)
class Vendor:
    """One synchronous vendor: a model it serves and answers that break its documented schema."""

    name: str
    model: str
    wrong_shapes: tuple[Any, ...]
    no_image: Any
    no_image_error: type[UpstreamError] = UpstreamRejected


NOT_BASE64 = "this is %% not base64 !!"

VENDORS = (
    Vendor(
        "openai",
        "gpt-image-1.5",
        wrong_shapes=(
            [],
            {"data": "b64_json"},
            {"data": [{"b64_json": NOT_BASE64}]},
            {"data": [{"url": 42}]},
        ),
        no_image={"created": 1_700_000_000, "data": []},
    ),
    Vendor(
        "xai",
        "grok-imagine-image",
        wrong_shapes=([], {"data": [{"b64_json": NOT_BASE64, "respect_moderation": True}]}),
        no_image={"data": []},
        no_image_error=UpstreamModerated,
    ),
    Vendor(
        "reve",
        "reve-create",
        wrong_shapes=([], {"image": 42}, {"image": NOT_BASE64, "content_violation": False}),
        no_image={"version": "reve-create@20250915", "content_violation": False, "image": ""},
    ),
    Vendor(
        "gemini",
        "gemini-2.5-flash-image",
        wrong_shapes=(
            [],
            {"candidates": "none"},
            {"candidates": [{"content": {"parts": [1, "two"]}}]},
            {"candidates": [{"content": {"parts": [{"inlineData": {"data": NOT_BASE64}}]}}]},
            {"promptFeedback": "blocked?", "candidates": [7]},
        ),
        no_image={
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "Sure!"}]}, "finishReason": "STOP"}
            ]
        },
    ),
    Vendor(
        "ideogram",
        "V_3_TURBO",
        wrong_shapes=([], {"data": "url"}, {"data": [1]}, {"data": [{"url": ["x"]}]}),
        no_image={"created": "2026-01-01T00:00:00Z", "data": []},
    ),
    Vendor(
        "ark",
        "seedream-4-0-250828",
        wrong_shapes=(
            [],
            {"data": "b64_json"},
            {"data": [1]},
            {"data": [{"b64_json": NOT_BASE64}]},
            {"data": [{"error": "InternalServiceError"}]},
        ),
        no_image={"model": "seedream-4-0-250828", "created": 1, "data": [], "usage": {}},
    ),
)
BY_NAME = {vendor.name: vendor for vendor in VENDORS}

Handler = Callable[[httpx2.Request], httpx2.Response]


async def fetch_input(url: str) -> FetchedInput:
    raise AssertionError(f"these jobs have no input images, yet {url} was fetched")


@pytest.fixture
async def make_adapter() -> AsyncIterator[Callable[[str, Handler], ProviderAdapter]]:
    """Builds a vendor's adapter through the registry, its vendor replaced by ``handler``."""
    made: list[ProviderAdapter] = []

    def make(vendor: str, handler: Handler) -> ProviderAdapter:
        config = ProviderSettings(api_key=f"{vendor}-key")
        context = ProviderContext(
            fetch_input=fetch_input, transport=httpx2.MockTransport(handler), clock=FakeClock()
        )
        adapter = registry.create_adapter(vendor, config, context)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.aclose()


def job(vendor: Vendor) -> GenerationRequest:
    return GenerationRequest(
        job_id="job-sync-answer",
        model=vendor.model,
        route=catalog_route(vendor.name, vendor.model),
        prompt="a lighthouse at dawn",
        params={},
    )


def answering(status: int, content: bytes, content_type: str = "application/json") -> Handler:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=content, headers={"content-type": content_type})

    return handler


def cases(kind: str) -> list[Any]:
    """``(vendor, body)`` params for every vendor's answers of one kind."""
    if kind == "wrong_shape":
        return [
            pytest.param(v.name, body, id=f"{v.name}-{index}")
            for v in VENDORS
            for index, body in enumerate(v.wrong_shapes)
        ]
    return [pytest.param(v.name, v.no_image, id=v.name) for v in VENDORS]


VENDOR_NAMES = [vendor.name for vendor in VENDORS]


@pytest.mark.parametrize("vendor", VENDOR_NAMES)
@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        pytest.param(b"<html><body>502 Bad Gateway</body></html>", "text/html", id="html"),
        pytest.param(b'{"data": [{"b64_json": "iVBO', "application/json", id="truncated"),
    ],
)
async def test_a_body_that_is_not_json_is_rejected(
    make_adapter: Callable[[str, Handler], ProviderAdapter],
    vendor: str,
    content: bytes,
    content_type: str,
) -> None:
    adapter = make_adapter(vendor, answering(200, content, content_type))

    with pytest.raises(UpstreamRejected) as caught:
        await adapter.submit(job(BY_NAME[vendor]))

    assert type(caught.value) is UpstreamRejected
    assert caught.value.provider == vendor
    assert vendor in caught.value.message
    assert "not JSON" in caught.value.message


@pytest.mark.parametrize("vendor", VENDOR_NAMES)
async def test_an_empty_body_is_rejected(
    make_adapter: Callable[[str, Handler], ProviderAdapter], vendor: str
) -> None:
    adapter = make_adapter(vendor, answering(200, b""))

    with pytest.raises(UpstreamRejected) as caught:
        await adapter.submit(job(BY_NAME[vendor]))

    assert type(caught.value) is UpstreamRejected
    assert caught.value.provider == vendor
    assert "empty" in caught.value.message


@pytest.mark.parametrize(("vendor", "body"), cases("wrong_shape"))
async def test_a_body_of_the_wrong_shape_is_rejected(
    make_adapter: Callable[[str, Handler], ProviderAdapter], vendor: str, body: Any
) -> None:
    adapter = make_adapter(vendor, answering(200, json.dumps(body).encode()))

    with pytest.raises(UpstreamRejected) as caught:
        await adapter.submit(job(BY_NAME[vendor]))

    assert type(caught.value) is UpstreamRejected
    assert caught.value.provider == vendor
    assert vendor in caught.value.message


@pytest.mark.parametrize(("vendor", "body"), cases("no_image"))
async def test_a_200_without_images(
    make_adapter: Callable[[str, Handler], ProviderAdapter], vendor: str, body: Any
) -> None:
    expected = BY_NAME[vendor].no_image_error
    adapter = make_adapter(vendor, answering(200, json.dumps(body).encode()))

    with pytest.raises(expected) as caught:
        await adapter.submit(job(BY_NAME[vendor]))

    assert type(caught.value) is expected
    assert not isinstance(caught.value, UpstreamRetryable)
    assert caught.value.provider == vendor
    assert "no image" in caught.value.message


@pytest.mark.parametrize("vendor", VENDOR_NAMES)
async def test_a_read_timeout_after_sending_is_not_retried(
    make_adapter: Callable[[str, Handler], ProviderAdapter], vendor: str
) -> None:
    sent: list[httpx2.Request] = []

    def hang(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        raise httpx2.ReadTimeout("timed out waiting for the answer", request=request)

    adapter = make_adapter(vendor, hang)

    with pytest.raises(UpstreamRejected, match="may already have charged") as caught:
        await adapter.submit(job(BY_NAME[vendor]))

    assert type(caught.value) is UpstreamRejected
    assert caught.value.provider == vendor
    assert [request.method for request in sent] == ["POST"]  # sent once, never resent


@pytest.mark.parametrize("vendor", VENDOR_NAMES)
@pytest.mark.parametrize("error", [httpx2.ConnectError, httpx2.ConnectTimeout])
async def test_a_connection_that_never_opened_is_retryable(
    make_adapter: Callable[[str, Handler], ProviderAdapter],
    vendor: str,
    error: type[httpx2.TransportError],
) -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise error("connection refused", request=request)

    adapter = make_adapter(vendor, refuse)

    with pytest.raises(UpstreamRetryable, match="unreachable") as caught:
        await adapter.submit(job(BY_NAME[vendor]))

    assert caught.value.provider == vendor


ADVISED_DELAYS = {"openai": 7, "xai": 5, "reve": 30, "gemini": 7, "ideogram": 5, "ark": 3}
"""Seconds each fake's ``rate-limit-me`` 429 advises (Gemini's in ``RetryInfo.retryDelay``)."""


@pytest.mark.parametrize("vendor", VENDOR_NAMES)
async def test_a_vendor_429_waits_the_advised_delay(vendor: str) -> None:
    settings = ProviderSettings(**provider_settings()[vendor])
    context = ProviderContext(
        fetch_input=fetch_input, transport=VendorTransport(), clock=FakeClock()
    )
    adapter = registry.create_adapter(vendor, settings, context)
    request = GenerationRequest(
        job_id="job-sync-answer",
        model=BY_NAME[vendor].model,
        route=catalog_route(vendor, BY_NAME[vendor].model),
        prompt="rate-limit-me: a lighthouse",
        params={},
    )
    try:
        with pytest.raises(UpstreamRateLimited) as caught:
            await adapter.submit(request)
    finally:
        await adapter.aclose()

    assert caught.value.provider == vendor
    assert caught.value.retry_after == ADVISED_DELAYS[vendor]
