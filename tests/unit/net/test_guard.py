"""The outbound URL guard: the SSRF table, pinning to the checked address, redirects, size caps."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx2
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from imagegate.net.guard import (
    BlockedUrl,
    FetchFailed,
    OutboundPolicy,
    Resolver,
    check_target,
    check_url,
    fetch_bytes,
    guarded_client,
    system_resolver,
)
from tests.unit.net.conftest import make_certificate

HOST = "hooks.example.test"  # .test never resolves in real DNS: only the fake resolver knows it
LOCAL = OutboundPolicy(allow_http=True, allow_networks=["127.0.0.0/8"])

# (address as the URL host, what it is, the canonical address named in the error)
FORBIDDEN = [
    ("127.0.0.1", "a loopback address", "127.0.0.1"),
    ("127.1", "a loopback address", "127.0.0.1"),
    ("2130706433", "a loopback address", "127.0.0.1"),
    ("0x7f000001", "a loopback address", "127.0.0.1"),
    ("0x7f.1", "a loopback address", "127.0.0.1"),
    ("017700000001", "a loopback address", "127.0.0.1"),
    ("0.0.0.0", "an unspecified address", "0.0.0.0"),
    ("0.1.2.3", "a private address", "0.1.2.3"),
    ("10.0.0.5", "a private address", "10.0.0.5"),
    ("172.16.0.1", "a private address", "172.16.0.1"),
    ("172.31.255.254", "a private address", "172.31.255.254"),
    ("192.168.1.1", "a private address", "192.168.1.1"),
    ("100.64.0.1", "a shared (CGNAT) address", "100.64.0.1"),
    ("100.127.255.254", "a shared (CGNAT) address", "100.127.255.254"),
    ("169.254.169.254", "the cloud metadata address", "169.254.169.254"),
    ("169.254.1.1", "a link-local address", "169.254.1.1"),
    ("224.0.0.1", "a multicast address", "224.0.0.1"),
    ("255.255.255.255", "the broadcast address", "255.255.255.255"),
    ("240.0.0.1", "a reserved address", "240.0.0.1"),
    ("[::1]", "a loopback address", "::1"),
    ("[::]", "an unspecified address", "::"),
    ("[fc00::1]", "a private address", "fc00::1"),
    ("[fd12:3456::1]", "a private address", "fd12:3456::1"),
    ("[fe80::1]", "a link-local address", "fe80::1"),
    ("[ff02::1]", "a multicast address", "ff02::1"),
    ("[::ffff:127.0.0.1]", "a loopback address embedded in an IPv6 address", "::ffff:7f00:1"),
    ("[::ffff:10.0.0.1]", "a private address embedded in an IPv6 address", "::ffff:a00:1"),
    ("[64:ff9b::a00:1]", "a private address embedded in an IPv6 address", "64:ff9b::a00:1"),
    ("[64:ff9b::a9fe:a9fe]", "the cloud metadata address embedded", "64:ff9b::a9fe:a9fe"),
    ("[2002:7f00:1::]", "a loopback address embedded in an IPv6 address", "2002:7f00:1::"),
    ("[::7f00:1]", "a reserved address", "::7f00:1"),
]


def fake_dns(table: dict[str, Sequence[str]]) -> tuple[list[str], Resolver]:
    """A resolver answering from ``table`` and the list of names it was asked, in order."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        if host not in table:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return table[host]

    return asked, resolve


def sequence_dns(*answers: Sequence[str]) -> tuple[list[str], Resolver]:
    """A rebinding resolver: the n-th question gets the n-th answer (the last one repeats)."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        return answers[min(len(asked), len(answers)) - 1]

    return asked, resolve


async def no_dns(host: str, port: int) -> Sequence[str]:
    raise AssertionError(f"an IP literal must not be resolved ({host})")


# --- the SSRF table ----------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "kind", "shown"), FORBIDDEN)
async def test_forbidden_ip_literal_is_blocked(host: str, kind: str, shown: str) -> None:
    policy = OutboundPolicy(allow_http=True)
    with pytest.raises(BlockedUrl) as caught:
        check_url(f"http://{host}/hook", policy)
    assert str(caught.value).startswith(f"is {kind}")
    assert f"({shown})" in str(caught.value)
    with pytest.raises(BlockedUrl):
        await check_target(policy, f"https://{host}:8443/hook", resolver=no_dns)


@pytest.mark.parametrize(
    ("host", "kind", "shown"), [f for f in FORBIDDEN if "." in f[2] or ":" in f[2]]
)
async def test_name_resolving_to_forbidden_address_is_blocked(
    host: str, kind: str, shown: str
) -> None:
    _asked, resolve = fake_dns({HOST: [shown]})
    with pytest.raises(BlockedUrl) as caught:
        await check_target(OutboundPolicy(), f"https://{HOST}/hook", resolver=resolve)
    assert str(caught.value).startswith(f"resolves to {kind}")
    assert f"({shown})" in str(caught.value)


async def test_any_private_record_blocks_even_with_a_public_one() -> None:
    _asked, resolve = fake_dns({HOST: ["93.184.216.34", "10.0.0.5"]})
    with pytest.raises(BlockedUrl, match=r"resolves to a private address \(10\.0\.0\.5\)"):
        await check_target(OutboundPolicy(), f"https://{HOST}/", resolver=resolve)


async def test_public_addresses_pass_and_are_all_returned() -> None:
    records = ["93.184.216.34", "2606:2800:220:1::1", "64:ff9b::5db8:d822", "::ffff:8.8.8.8"]
    _asked, resolve = fake_dns({HOST: records})
    checked = await check_target(OutboundPolicy(), f"https://{HOST}/x", resolver=resolve)
    assert [str(a) for a in checked.addresses] == [
        "93.184.216.34",
        "2606:2800:220:1::1",
        "64:ff9b::5db8:d822",
        "::ffff:808:808",
    ]
    assert (checked.target.host, checked.target.port) == (HOST, 443)


async def test_the_system_resolver_is_checked_too() -> None:
    with pytest.raises(BlockedUrl, match="resolves to a loopback address"):
        await check_target(OutboundPolicy(), "https://localhost/", resolver=system_resolver)
    with pytest.raises(BlockedUrl, match="does not resolve"):
        await check_target(OutboundPolicy(), "https://nothing.invalid/")


@pytest.mark.parametrize(
    ("url", "policy", "rule"),
    [
        ("http://example.com/", OutboundPolicy(), "must use https, not 'http'"),
        ("ftp://example.com/", OutboundPolicy(allow_http=True), "must use https or http"),
        ("file:///etc/passwd", OutboundPolicy(allow_http=True), "must use https or http"),
        ("https://user:pw@example.com/", OutboundPolicy(), "must not carry a user name"),
        ("https://user@example.com/", OutboundPolicy(), "must not carry a user name"),
        ("https://example.com:22/", OutboundPolicy(allowed_ports={443}), "uses port 22"),
        ("not a url", OutboundPolicy(), "must use https, and has no scheme"),
        ("https://bücher.example/", OutboundPolicy(allowed_ports={80}), "uses port 443"),
    ],
)
def test_url_rules(url: str, policy: OutboundPolicy, rule: str) -> None:
    with pytest.raises(BlockedUrl) as caught:
        check_url(url, policy)
    assert rule in str(caught.value)


def test_allowed_port_and_default_port() -> None:
    assert check_url("https://example.com/", OutboundPolicy(allowed_ports={443})).port == 443
    assert check_url("http://example.com/", OutboundPolicy(allow_http=True)).port == 80
    assert check_url("https://Bücher.Example./").host == "xn--bcher-kva.example"


async def test_allow_list_re_allows_networks_addresses_and_hosts() -> None:
    _asked, resolve = fake_dns({"minio.internal": ["10.0.0.5"], HOST: ["10.0.0.6"]})
    networks = OutboundPolicy(
        allow_http=True, allow_networks=["127.0.0.0/8", "::1/128", "10.0.0.6"]
    )
    assert str(check_url("http://127.0.0.1:9000/", networks).literal) == "127.0.0.1"
    assert check_url("http://[::ffff:127.0.0.1]/", networks).literal is not None
    assert (await check_target(networks, "http://[::1]/", resolver=no_dns)).addresses
    assert (await check_target(networks, f"http://{HOST}/", resolver=resolve)).addresses
    with pytest.raises(BlockedUrl, match=r"\(10\.0\.0\.5\)"):
        await check_target(networks, "http://minio.internal/", resolver=resolve)
    with pytest.raises(BlockedUrl, match=r"cloud metadata address \(169\.254\.169\.254\)"):
        check_url("http://169.254.169.254/", networks)

    with pytest.raises(ValueError, match=r"not a network or host name: '10\.0\.0\.0/33'"):
        OutboundPolicy(allow_networks=["10.0.0.0/33"])

    by_name = OutboundPolicy(allow_networks=["MinIO.internal"])
    checked = await check_target(by_name, "https://minio.internal/", resolver=resolve)
    assert [str(a) for a in checked.addresses] == ["10.0.0.5"]


# (allow-list entry, URL, allowed?): an entry that names a port re-allows that port only
PORTED = [
    ("127.0.0.2:8080", "http://127.0.0.2:8080/hook", True),
    ("127.0.0.2:8080", "http://127.0.0.2:8081/hook", False),
    ("127.0.0.2:8080", "http://127.0.0.2/hook", False),
    ("127.0.0.2", "http://127.0.0.2:8081/hook", True),
    ("[::1]:9000", "http://[::1]:9000/", True),
    ("[::1]:9000", "http://[::1]:9001/", False),
    ("[::1]", "http://[::1]:9001/", True),
    ("::1", "http://[::1]:9001/", True),
    ("10.0.0.0/8:443", "https://10.2.3.4/", True),
    ("10.0.0.0/8:443", "https://10.2.3.4:8443/", False),
    ("10.0.0.0/8:443", "http://10.2.3.4/", False),
    (" 10.0.0.0/8:443 ", "https://10.2.3.4:443/", True),
]


@pytest.mark.parametrize(("entry", "url", "allowed"), PORTED)
def test_allow_list_entry_with_a_port_allows_only_that_port(
    entry: str, url: str, allowed: bool
) -> None:
    policy = OutboundPolicy(allow_http=True, allow_networks=[entry])
    if allowed:
        assert check_url(url, policy).literal is not None
    else:
        with pytest.raises(BlockedUrl, match="address"):
            check_url(url, policy)


async def test_allow_listed_host_name_with_a_port_allows_only_that_port() -> None:
    _asked, resolve = fake_dns({"minio.internal": ["10.0.0.5"]})
    policy = OutboundPolicy(allow_http=True, allow_networks=["minio.internal:9000"])
    assert (await check_target(policy, "http://minio.internal:9000/", resolver=resolve)).addresses
    with pytest.raises(BlockedUrl, match=r"resolves to a private address \(10\.0\.0\.5\)"):
        await check_target(policy, "http://minio.internal:9001/", resolver=resolve)


@pytest.mark.parametrize(
    "entry", ["127.0.0.2:0", "127.0.0.2:65536", "127.0.0.2:http", "[::1]9000", "[::1", ":80"]
)
def test_malformed_allow_list_entry_with_a_port_is_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="not a"):
        OutboundPolicy(allow_networks=[entry])


# --- pinning: the transport dials the address it checked ---------------------------------------


async def test_transport_connects_to_the_checked_address_not_a_later_answer() -> None:
    """DNS rebinding: public at check time, loopback afterwards. Only the checked IP is dialled."""
    asked, resolve = sequence_dns(["93.184.216.34"], ["127.0.0.1"])
    sent: list[httpx2.Request] = []

    def upstream(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return httpx2.Response(204)

    async with guarded_client(
        OutboundPolicy(), resolver=resolve, inner=httpx2.MockTransport(upstream)
    ) as client:
        response = await client.post(f"https://{HOST}/hook?x=1", content=b"{}")
        assert response.status_code == 204
        assert str(response.request.url) == f"https://{HOST}/hook?x=1"

        with pytest.raises(BlockedUrl, match=r"resolves to a loopback address \(127\.0\.0\.1\)"):
            await client.post(f"https://{HOST}/hook", content=b"{}")

    (request,) = sent  # the second attempt never reached the network
    assert str(request.url) == "https://93.184.216.34/hook?x=1"
    assert request.headers["host"] == HOST
    assert request.extensions["sni_hostname"] == HOST
    assert request.content == b"{}"
    assert asked == [HOST, HOST]  # checked once per request, never re-resolved to connect


async def test_real_request_goes_to_the_checked_ip_with_the_original_host(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    # First answer allow-listed loopback; the rebinding answer is 127.0.0.2, which is not.
    asked, resolve = sequence_dns(["127.0.0.1"], ["127.0.0.2"])
    policy = OutboundPolicy(allow_http=True, allow_networks=["127.0.0.1/32"])
    url = f"http://{HOST}:{httpserver.port}/hook"
    async with guarded_client(policy, timeout=5, resolver=resolve) as client:
        response = await client.post(url, content=b"payload")
        assert response.status_code == 200 and response.text == "ok"
        with pytest.raises(BlockedUrl, match=r"\(127\.0\.0\.2\)"):
            await client.post(url, content=b"payload")
    ((request, _),) = httpserver.log
    assert request.headers["Host"] == f"{HOST}:{httpserver.port}"
    assert request.get_data() == b"payload"
    assert asked == [HOST, HOST]


async def test_redirects_are_not_followed(httpserver: HTTPServer) -> None:
    target = f"http://{HOST}:{httpserver.port}"
    httpserver.expect_request("/moved").respond_with_data(
        "", status=302, headers={"Location": f"{target}/secret"}
    )
    httpserver.expect_request("/secret").respond_with_data("internal")
    _asked, resolve = fake_dns({HOST: ["127.0.0.1"]})
    async with guarded_client(LOCAL, timeout=5, resolver=resolve) as client:
        response = await client.get(f"{target}/moved")
        assert response.status_code == 302
        with pytest.raises(BlockedUrl, match=r"redirect \(HTTP 302 to '.*/secret'\), not followed"):
            await fetch_bytes(client, f"{target}/moved", max_bytes=1000, timeout=5)
    assert [r.path for r, _ in httpserver.log] == ["/moved", "/moved"]


async def test_fetch_bytes_returns_body_and_media_type(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a.png").respond_with_data(
        b"abc" * 100, content_type="image/png; charset=binary"
    )
    _asked, resolve = fake_dns({HOST: ["127.0.0.1"]})
    url = f"http://{HOST}:{httpserver.port}/a.png"
    body, media = await fetch_bytes(LOCAL, url, max_bytes=300, timeout=5, resolver=resolve)
    assert (body, media) == (b"abc" * 100, "image/png")


async def test_size_cap_declared_and_streamed(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/declared").respond_with_data(b"x" * 5000)

    def streamed(request: Request) -> Response:
        return Response((b"y" * 1000 for _ in range(50)), content_type="image/png")

    httpserver.expect_request("/streamed").respond_with_handler(streamed)
    _asked, resolve = fake_dns({HOST: ["127.0.0.1"]})
    base = f"http://{HOST}:{httpserver.port}"
    async with guarded_client(LOCAL, timeout=5, resolver=resolve) as client:
        with pytest.raises(FetchFailed, match=r"larger than 4096 bytes \(5000 declared\)"):
            await fetch_bytes(client, f"{base}/declared", max_bytes=4096, timeout=5)
        with pytest.raises(FetchFailed, match=r"larger than 4096 bytes$"):
            await fetch_bytes(client, f"{base}/streamed", max_bytes=4096, timeout=5)


async def test_error_statuses_and_unreachable_targets(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/gone").respond_with_data("", status=404)
    httpserver.expect_request("/busy").respond_with_data("", status=503)
    _asked, resolve = fake_dns({HOST: ["127.0.0.1"]})
    base = f"http://{HOST}:{httpserver.port}"
    async with guarded_client(LOCAL, timeout=5, resolver=resolve) as client:
        with pytest.raises(FetchFailed, match="answered HTTP 404") as gone:
            await fetch_bytes(client, f"{base}/gone", max_bytes=10, timeout=5)
        assert (gone.value.status, gone.value.retryable) == (404, False)
        with pytest.raises(FetchFailed) as busy:
            await fetch_bytes(client, f"{base}/busy", max_bytes=10, timeout=5)
        assert (busy.value.status, busy.value.retryable) == (503, True)
        with pytest.raises(FetchFailed, match="could not be reached") as refused:
            await fetch_bytes(client, f"http://{HOST}:1/", max_bytes=10, timeout=5)
        assert refused.value.retryable


async def test_timeout_bounds_the_whole_download_not_each_read() -> None:
    """A server trickling a byte every 50 ms never trips a read timeout; the total one fires."""
    handlers: list[asyncio.Task[None]] = []

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n\r\n")
            for _ in range(100):
                writer.write(b".")
                await writer.drain()
                await asyncio.sleep(0.05)
        finally:
            writer.close()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _asked, resolve = fake_dns({HOST: ["127.0.0.1"]})
    try:
        with pytest.raises(FetchFailed, match=r"did not finish within 0\.4 s") as slow:
            await fetch_bytes(
                LOCAL, f"http://{HOST}:{port}/", max_bytes=10_000, timeout=0.4, resolver=resolve
            )
        assert slow.value.retryable
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


# --- TLS: SNI and certificate checks use the name while the socket goes to the IP -------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throw-away CA and a certificate for ``HOST`` only."""
    return make_certificate(tmp_path_factory.mktemp("tls"), f"DNS:{HOST}")


@pytest.fixture
def tls_server(tls_files: Path) -> Iterator[HTTPServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files / "leaf.pem", tls_files / "leaf.key")
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        if server.is_running():
            server.stop()


async def test_tls_uses_the_name_for_sni_and_certificate(
    tls_files: Path, tls_server: HTTPServer
) -> None:
    tls_server.expect_request("/hook").respond_with_data("secure")
    trust = ssl.create_default_context(cafile=str(tls_files / "ca.pem"))
    _asked, resolve = fake_dns({HOST: ["127.0.0.1"], "other.example.test": ["127.0.0.1"]})
    policy = OutboundPolicy(allow_networks=["127.0.0.1"])
    async with guarded_client(policy, timeout=5, resolver=resolve, verify=trust) as client:
        response = await client.get(f"https://{HOST}:{tls_server.port}/hook")
        assert response.text == "secure"
        with pytest.raises(httpx2.ConnectError, match=r"Hostname mismatch"):
            await client.get(f"https://other.example.test:{tls_server.port}/hook")
    assert len(tls_server.log) == 1


async def test_no_connection_is_reused_across_names(tls_files: Path) -> None:
    """A keep-alive server: a pooled TLS connection (keyed by IP) verified for one name must
    never carry a request for another name, so the guard opens a connection per request."""
    connections: list[asyncio.Task[None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.append(task)
        try:
            with contextlib.suppress(ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
                while await reader.readuntil(b"\r\n\r\n"):
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    await writer.drain()
        finally:
            writer.close()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files / "leaf.pem", tls_files / "leaf.key")
    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    trust = ssl.create_default_context(cafile=str(tls_files / "ca.pem"))
    _asked, resolve = fake_dns({HOST: ["127.0.0.1"], "other.example.test": ["127.0.0.1"]})
    policy = OutboundPolicy(allow_networks=["127.0.0.1"])
    try:
        async with guarded_client(policy, timeout=5, resolver=resolve, verify=trust) as client:
            for _ in range(2):
                assert (await client.get(f"https://{HOST}:{port}/")).text == "ok"
            with pytest.raises(httpx2.ConnectError, match=r"Hostname mismatch"):
                await client.get(f"https://other.example.test:{port}/")
    finally:
        server.close()
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await server.wait_closed()
    assert len(connections) == 2  # one per answered request; the refused one failed its handshake
