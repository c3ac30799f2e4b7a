from __future__ import annotations

import asyncio

import httpx2
import pytest

from imagegate.errors import (
    UpstreamError,
    UpstreamMisconfigured,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamRetryable,
)
from imagegate.net.guard import OutboundPolicy
from imagegate.net.images import make_input_fetcher
from imagegate.providers.base import open_client
from imagegate.providers.http import clean_message, raise_for_upstream, redact, transport_error
from imagegate.providers.port import ProviderContext
from imagegate.settings import ProviderSettings


def response(status: int, **headers: str) -> httpx2.Response:
    return httpx2.Response(status, headers=headers, request=httpx2.Request("POST", "https://x/y"))


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (408, UpstreamRetryable),
        (409, UpstreamRetryable),
        (429, UpstreamRateLimited),
        (500, UpstreamRetryable),
        (503, UpstreamRetryable),
        (401, UpstreamMisconfigured),
        (403, UpstreamMisconfigured),
        (400, UpstreamRejected),
        (422, UpstreamRejected),
        (404, UpstreamMisconfigured),
        (501, UpstreamError),
    ],
)
def test_status_mapping(status: int, kind: type[UpstreamError]) -> None:
    with pytest.raises(kind) as caught:
        raise_for_upstream(
            response(status, **{"retry-after": "3"}), "acme", "bad  things\nhappened"
        )
    assert type(caught.value) is kind
    if kind is UpstreamRetryable:
        assert caught.value.retry_after == 3.0  # type: ignore[attr-defined]
    if kind is UpstreamRejected:
        assert caught.value.message == "Provider returned an error: bad things happened"


def test_success_passes() -> None:
    raise_for_upstream(response(200), "acme")


def test_transport_errors_before_and_after_sending() -> None:
    request = httpx2.Request("POST", "https://x")
    connect = transport_error(httpx2.ConnectError("refused", request=request), "acme", sent=True)
    assert isinstance(connect, UpstreamRetryable)
    read = transport_error(httpx2.ReadTimeout("slow", request=request), "acme", sent=True)
    assert isinstance(read, UpstreamRejected)
    assert "may already have charged" in read.message
    unsent = transport_error(httpx2.ReadTimeout("slow", request=request), "acme", sent=False)
    assert isinstance(unsent, UpstreamRetryable)


def test_redaction_and_cleaning() -> None:
    assert redact({"Authorization": "Bearer s", "X-Key": "k", "Accept": "a"}) == {
        "Authorization": "[redacted]",
        "X-Key": "[redacted]",
        "Accept": "a",
    }
    assert clean_message("x" * 600).endswith("…")
    assert len(clean_message("x" * 600)) == 501


async def test_vendor_pool_holds_as_many_calls_as_the_provider_cap() -> None:
    """Every call the provider's ``max_concurrency`` allows is on the wire at once: a vendor
    that answers only once all of them arrived answers them all (a pool of httpx's default
    100 connections would leave the rest queued in the client, and the server would wait)."""
    cap = 150
    arrived = 0
    everyone = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal arrived
        await reader.readuntil(b"\r\n\r\n")
        arrived += 1
        if arrived == cap:
            everyone.set()
        await everyone.wait()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=cap * 2)
    port = server.sockets[0].getsockname()[1]
    config = ProviderSettings(max_concurrency=cap, base_url=f"http://127.0.0.1:{port}")
    context = ProviderContext(fetch_input=make_input_fetcher(OutboundPolicy(), max_bytes=1024))
    client = open_client("openai", config, context, {}, default_base_url=None)
    try:
        async with asyncio.timeout(20):
            answers = await asyncio.gather(*(client.get("/slow") for _ in range(cap)))
    finally:
        await client.aclose()
        server.close()
    assert [a.status_code for a in answers] == [200] * cap
