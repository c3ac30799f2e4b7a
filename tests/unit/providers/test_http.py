from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import threading
from typing import Any

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
from imagegate.providers.http import (
    BASE64_SLICE,
    LARGE_JSON_BYTES,
    VendorClient,
    clean_message,
    decode_base64,
    json_object,
    json_object_off_loop,
    parse_off_loop,
    raise_for_upstream,
    redact,
    transport_error,
)
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


def answer_of(size: int) -> httpx2.Response:
    """A 200 carrying one base64 "image" whose JSON is about ``size`` bytes."""
    image = base64.b64encode(bytes(size * 3 // 4)).decode()
    body = json.dumps({"data": [{"b64_json": image}]}).encode()
    return httpx2.Response(200, content=body, request=httpx2.Request("POST", "https://x/y"))


@pytest.mark.parametrize(("size", "off_loop"), [(1024, False), (LARGE_JSON_BYTES * 2, True)])
async def test_a_large_answer_is_parsed_off_the_event_loop(size: int, off_loop: bool) -> None:
    threads: list[int] = []

    def parse(answer: httpx2.Response) -> int:
        threads.append(threading.get_ident())
        return len(answer.json()["data"][0]["b64_json"])

    assert await parse_off_loop(answer_of(size), parse) > 0
    assert (threads != [threading.get_ident()]) is off_loop


async def test_the_off_loop_json_object_keeps_the_malformed_answer_errors() -> None:
    body = await json_object_off_loop(answer_of(LARGE_JSON_BYTES * 2), "openai")
    assert len(body["data"]) == 1
    request = httpx2.Request("POST", "https://x/y")
    big_list = httpx2.Response(
        200, content=b"[" + b"1," * LARGE_JSON_BYTES + b"1]", request=request
    )
    with pytest.raises(UpstreamRejected, match="JSON list instead of an object"):
        await json_object_off_loop(big_list, "openai")
    with pytest.raises(UpstreamRetryable, match="not JSON"):
        await json_object_off_loop(
            httpx2.Response(200, content=b"{" * 300_000, request=request), "fal", polling=True
        )


@pytest.mark.parametrize(
    "content",
    [
        b'{"data": ' + b"[" * 5000 + b"]" * 5000 + b"}",  # the standard library's RecursionError
        b'{"data": [], "seed": NaN}',
        b'{"data": "\xff"}',
    ],
    ids=["nested-too-deep", "nan", "not-utf8"],
)
def test_an_answer_that_is_not_json_is_malformed(content: bytes) -> None:
    answer = httpx2.Response(200, content=content, request=httpx2.Request("POST", "https://x/y"))
    with pytest.raises(UpstreamRejected, match="not JSON"):
        json_object(answer, "openai")


@pytest.mark.parametrize(
    "path",
    [
        "/images/generations",
        "images/edits",
        "/tasks/abc?x=1",
        "https://cdn.example.com/out.png",
        "",
    ],
)
def test_a_vendor_client_builds_the_urls_httpx2_builds(path: str) -> None:
    plain = httpx2.AsyncClient(base_url="https://api.example.com/v1")
    vendor = VendorClient(base_url="https://api.example.com/v1")
    for _ in range(2):  # the second time from what it remembered
        assert vendor.build_request("GET", path).url == plain.build_request("GET", path).url
        with_params = vendor.build_request("GET", path, params={"page": "2"}).url
        assert with_params == plain.build_request("GET", path, params={"page": "2"}).url
    vendor.base_url = plain.base_url = httpx2.URL("https://other.example.com/v2/")
    assert vendor.build_request("GET", path).url == plain.build_request("GET", path).url


def test_a_vendor_client_remembers_a_bounded_number_of_urls() -> None:
    vendor = VendorClient(base_url="https://api.example.com")
    for n in range(VendorClient.MERGED_URLS * 3):
        assert vendor.build_request("GET", f"/tasks/{n}").url.path == f"/tasks/{n}"
    assert len(vendor._merged) <= VendorClient.MERGED_URLS


LARGE = os.urandom(3 * BASE64_SLICE // 4 * 3 + 5)  # three slices and a bit of base64


@pytest.mark.parametrize("raw", [b"", b"a", b"ab", b"abc", os.urandom(1000), LARGE])
def test_base64_decodes_as_the_standard_library_does(raw: bytes) -> None:
    encoded = base64.b64encode(raw)
    assert decode_base64(encoded) == raw
    assert decode_base64(encoded.decode()) == raw


@pytest.mark.parametrize(
    "broken",
    [
        lambda text: text[:-1],  # a wrong length
        lambda text: text[:8] + "=" + text[9:],  # padding before the end
        lambda text: text[: BASE64_SLICE * 2] + "*" + text[BASE64_SLICE * 2 + 1 :],
        lambda text: text[:12] + "\n" + text[12:],
        lambda text: text[:40] + "é" + text[41:],
        lambda text: text[:40] + "狐" + text[41:],  # past Latin-1
        lambda text: text[:40] + "\U0001f98a" + text[41:],  # past the BMP
        lambda text: text + "=",  # padding after a whole quantum: a wrong length
    ],
)
@pytest.mark.parametrize("raw", [os.urandom(600), LARGE])
def test_base64_that_is_not_strict_is_refused(broken: Any, raw: bytes) -> None:
    text = broken(base64.b64encode(raw).decode())
    with pytest.raises(binascii.Error):
        decode_base64(text)
