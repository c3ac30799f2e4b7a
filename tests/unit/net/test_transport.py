"""Vendor calls through aiohttp behave as httpx2's own transport did, against a real socket."""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest

from imagegate.errors import UpstreamRejected, UpstreamRetryable
from imagegate.net.guard import default_tls
from imagegate.net.transport import AiohttpTransport
from imagegate.providers.http import (
    POOL_FLOOR,
    POOL_MARGIN,
    VendorClient,
    create_client,
    post_json,
    transport_error,
)
from tests.unit.net.conftest import make_certificate

Reply = Callable[["Seen", asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Seen:
    """What the server read: request line, headers (lower-case names), body."""

    line: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    url: str
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0


@asynccontextmanager
async def serving(
    reply: Reply, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[Server]:
    """An HTTP/1.1 server on 127.0.0.1 answering each request with ``reply`` (keep-alive); with
    ``tls``, HTTPS, its URL naming ``host``."""
    server = Server("")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *fields = head.decode("latin-1").split("\r\n")[:-2]
                headers = {k.lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                seen = Seen(line, headers, body)
                server.seen.append(seen)
                await reply(seen, writer)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    scheme = "https" if tls else "http"
    server.url = f"{scheme}://{host}:{listener.sockets[0].getsockname()[1]}"
    try:
        yield server
    finally:
        listener.close()


def answer(status: int, body: bytes, *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"content-length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def echo(seen: Seen, writer: asyncio.StreamWriter) -> None:
    body = json.dumps({"line": seen.line, "body": seen.body.decode()}).encode()
    writer.write(answer(200, body, "content-type: application/json"))
    await writer.drain()


async def silent(seen: Seen, writer: asyncio.StreamWriter) -> None:
    """A vendor that never answers."""
    await asyncio.sleep(30)


async def cut(seen: Seen, writer: asyncio.StreamWriter) -> None:
    """A vendor that cuts the connection mid-answer."""
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial")
    await writer.drain()
    writer.transport.abort()


def client(url: str, *, connections: int = 4, timeout: float = 5.0) -> httpx2.AsyncClient:
    return create_client(
        url, {"Authorization": "Bearer k"}, timeout=timeout, connections=connections
    )


async def test_a_call_carries_method_path_headers_and_body_and_reuses_its_connection() -> None:
    async with serving(echo) as server, client(server.url) as vendor:
        first = await vendor.post("/v1/images?x=1", json={"prompt": "fox"}, headers={"X-A": "b"})
        second = await vendor.get("/v1/models")

    assert first.status_code == 200
    assert first.json() == {"line": "POST /v1/images?x=1 HTTP/1.1", "body": '{"prompt":"fox"}'}
    sent = server.seen[0].headers
    assert sent["authorization"] == "Bearer k"
    assert sent["x-a"] == "b"
    assert sent["content-type"] == "application/json"
    assert sent["user-agent"].startswith("python-httpx")
    assert second.json()["line"] == "GET /v1/models HTTP/1.1"
    assert server.connections == 1


async def test_a_compressed_answer_is_decoded_and_a_multipart_body_arrives_whole() -> None:
    async def gzipped(seen: Seen, writer: asyncio.StreamWriter) -> None:
        body = gzip.compress(json.dumps({"size": len(seen.body)}).encode())
        writer.write(answer(200, body, "content-encoding: gzip"))
        await writer.drain()

    picture = bytes(range(256)) * 400
    async with serving(gzipped) as server, client(server.url) as vendor:
        got = await vendor.post("/edit", data={"prompt": "p"}, files={"image": ("a.png", picture)})

    assert got.json() == {"size": len(server.seen[0].body)}
    assert server.seen[0].headers["content-type"].startswith("multipart/form-data; boundary=")
    assert picture in server.seen[0].body


async def test_a_streamed_answer_is_read_in_chunks_and_a_stream_left_early_frees_the_pool() -> None:
    size = 1_000_000

    async def big(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(200, b"x" * size))
        await writer.drain()

    async with serving(big) as server, client(server.url, connections=1) as vendor:
        async with vendor.stream("GET", "/image") as streamed:
            chunks = [len(chunk) async for chunk in streamed.aiter_bytes()]
        async with vendor.stream("GET", "/image") as left:
            await anext(left.aiter_bytes())
        again = await vendor.get("/image")

    assert sum(chunks) == size and len(chunks) > 1
    assert len(again.content) == size


async def test_a_refused_connection_is_a_connect_error_that_is_retried() -> None:
    listener = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    async with client(f"http://127.0.0.1:{port}") as vendor:
        with pytest.raises(httpx2.ConnectError) as caught:
            await vendor.post("/v1/images", json={})

    assert isinstance(transport_error(caught.value, "acme", sent=True), UpstreamRetryable)


async def test_an_answer_that_never_comes_is_a_read_timeout_not_retried_after_a_paid_call() -> None:
    async with serving(silent) as server, client(server.url, timeout=0.3) as vendor:
        with pytest.raises(httpx2.ReadTimeout) as caught:
            await vendor.post("/v1/images", json={})

    assert isinstance(transport_error(caught.value, "acme", sent=True), UpstreamRejected)


async def test_a_connection_cut_mid_answer_is_a_protocol_error() -> None:
    async with serving(cut) as server, client(server.url) as vendor:
        with pytest.raises(httpx2.RemoteProtocolError):
            await vendor.get("/v1/images/x")


async def test_calls_past_the_pool_wait_their_turn_and_the_pool_holds_its_size() -> None:
    release = asyncio.Event()

    async def held(seen: Seen, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.write(answer(200, b"ok"))
        await writer.drain()

    async with serving(held) as server, client(server.url, connections=1) as vendor:
        size = POOL_FLOOR + POOL_MARGIN  # what the pool holds for a provider cap of 1
        calls = [asyncio.create_task(vendor.get(f"/{n}")) for n in range(size + 2)]
        while len(server.seen) < size:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert len(server.seen) == size
        release.set()
        answers = await asyncio.gather(*calls)

    assert [a.status_code for a in answers] == [200] * (size + 2)
    assert server.connections == size


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certificate(tmp_path_factory.mktemp("tls"), "DNS:localhost")


@pytest.fixture
def tls(tls_files: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files / "leaf.pem", tls_files / "leaf.key")
    return context


async def test_https_verifies_the_vendor_certificate_and_its_name(
    tls_files: Path, tls: ssl.SSLContext
) -> None:
    trusting = ssl.create_default_context(cafile=str(tls_files / "ca.pem"))
    async with serving(echo, tls, host="localhost") as server:
        transport = AiohttpTransport(connections=2, tls=trusting)
        async with httpx2.AsyncClient(base_url=server.url, transport=transport) as vendor:
            assert (await vendor.post("/v1/images", json={})).status_code == 200
        wrong_name = server.url.replace("localhost", "127.0.0.1")
        for url, trust in ((wrong_name, trusting), (server.url, default_tls())):
            checking = AiohttpTransport(connections=2, tls=trust)
            async with httpx2.AsyncClient(transport=checking) as vendor:
                with pytest.raises(httpx2.ConnectError, match=r"(?i)certificate|hostname"):
                    await vendor.post(f"{url}/v1/images", json={})
    assert len(server.seen) == 1


async def test_only_the_request_own_headers_are_sent() -> None:
    async with serving(echo) as server, client(server.url) as vendor:
        await vendor.post("/upload", content=b"raw bytes")

    sent = server.seen[0].headers
    assert "content-type" not in sent
    assert sent["content-length"] == "9"
    assert sent["accept-encoding"] == "gzip, deflate" or "br" in sent["accept-encoding"]


Send = Callable[[httpx2.AsyncClient, str, object], Awaitable[httpx2.Response]]


async def _post(vendor: httpx2.AsyncClient, path: str, payload: object) -> httpx2.Response:
    return await vendor.post(path, json=payload)


async def _post_json(vendor: httpx2.AsyncClient, path: str, payload: object) -> httpx2.Response:
    return await post_json(vendor, path, payload)


BOTH: list[Send] = [_post, _post_json]
"""A JSON body sent as ``post(json=)`` and as ``post_json`` (what the vendors' hot calls use)."""


async def test_a_json_post_sent_straight_to_aiohttp_is_the_request_post_sends() -> None:
    payload = {"prompt": "un renard — 狐", "n": 1, "size": None, "quality": 0.5}

    async def cookie_then_echo(seen: Seen, writer: asyncio.StreamWriter) -> None:
        body = json.dumps({"line": seen.line, "body": seen.body.decode()}).encode()
        writer.write(answer(201, body, "content-type: application/json", "x-trace: t1"))
        await writer.drain()

    async with serving(cookie_then_echo) as server, client(server.url + "/v1") as vendor:
        assert isinstance(vendor, VendorClient)
        sent = await vendor.post("/images/generations", json=payload)
        direct = await vendor.post_json("/images/generations", payload)

    posted, straight = server.seen
    assert straight.line == posted.line == "POST /v1/images/generations HTTP/1.1"
    assert straight.headers == posted.headers
    assert straight.body == posted.body
    assert (direct.status_code, direct.reason_phrase) == (sent.status_code, sent.reason_phrase)
    assert direct.headers.multi_items() == sent.headers.multi_items()
    assert direct.content == sent.content
    assert direct.json()["body"] == json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    assert server.connections == 1


async def test_a_cookie_a_vendor_sets_goes_with_the_next_call_either_way() -> None:
    async def cookie(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(200, b"{}", "set-cookie: lb=a1; Path=/"))
        await writer.drain()

    async with serving(cookie) as server, client(server.url) as vendor:
        await post_json(vendor, "/v1/images", {})
        await post_json(vendor, "/v1/images", {})

    assert "cookie" not in server.seen[0].headers
    assert server.seen[1].headers["cookie"] == "lb=a1"


async def test_a_large_json_answer_is_read_whole_either_way() -> None:
    size = 1_000_000  # past EAGER_BYTES: aiohttp hands it over as a stream

    async def big(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(200, b"x" * size))
        await writer.drain()

    async with serving(big) as server, client(server.url) as vendor:
        for send in BOTH:
            assert len((await send(vendor, "/v1/images", {})).content) == size


@pytest.mark.parametrize("send", BOTH)
async def test_failures_of_a_json_post_are_httpx2_errors_either_way(send: Send) -> None:
    listener = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    async with client(f"http://127.0.0.1:{port}") as vendor:
        with pytest.raises(httpx2.ConnectError) as refused:
            await send(vendor, "/v1/images", {})
    assert refused.value.request.url == f"http://127.0.0.1:{port}/v1/images"

    async with serving(silent) as server, client(server.url, timeout=0.3) as vendor:
        with pytest.raises(httpx2.ReadTimeout):
            await send(vendor, "/v1/images", {})

    async with serving(cut) as server, client(server.url) as vendor:
        with pytest.raises(httpx2.RemoteProtocolError):
            await send(vendor, "/v1/images", {})
