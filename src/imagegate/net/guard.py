"""The outbound URL guard: every webhook and input-image request the gateway makes goes through it.

Webhook URLs and input-image URLs are chosen by API users, so a request to them must never reach
the gateway's own network (loopback, RFC 1918, cloud metadata at 169.254.169.254, …). The rules,
applied on **every** request (webhook retries happen hours later; DNS may have changed):

1. ``check_url`` — the URL alone: ``https`` (``http`` only when ``allow_http``), no userinfo, a
   host, an allowed port. IP literals are recognised in every form a resolver accepts
   (``127.1``, ``2130706433``, ``0x7f.1``, ``017700000001``) and normalised to the address.
2. ``check_target`` — resolve every A/AAAA record and refuse if **any** address is not globally
   routable (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96`` and 6to4 addresses are
   unwrapped and judged by the IPv4 address they carry). ``OutboundPolicy.allow_networks`` lists
   the operator's exceptions: CIDRs or single addresses, and exact host names.
3. ``GuardedTransport`` — connects to the address that was checked, never to a fresh answer from
   DNS, which defeats DNS rebinding: the request URL's host is replaced by the checked IP, the
   ``Host`` header keeps the original name, and for ``https`` the ``sni_hostname`` request
   extension carries the name, which httpcore passes to ``SSLContext.wrap_socket`` as
   ``server_hostname`` — so SNI and certificate verification (hostname included) still use the
   name. Connections are not kept alive: a pooled connection is keyed by the IP, and reusing a
   TLS connection verified for one name to carry a request for another name would skip that
   name's certificate check.
4. Redirects are never followed (``guarded_client`` sets ``follow_redirects=False``;
   ``fetch_bytes`` turns a 3xx into ``BlockedUrl``), and ``fetch_bytes`` caps size and time.

Errors::

    OutboundError
    ├── BlockedUrl     the policy refuses the target; ``str(exc)`` names the rule
    └── FetchFailed    the target answered badly (status, size, time, connection)
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field

import anyio
import httpx2

__all__ = [
    "BlockedUrl",
    "CheckedTarget",
    "FetchFailed",
    "GuardedTransport",
    "IPAddress",
    "OutboundError",
    "OutboundPolicy",
    "ParsedTarget",
    "Resolver",
    "check_target",
    "check_url",
    "default_tls",
    "fetch_bytes",
    "forbidden_reason",
    "guarded_client",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``resolver(host, port)`` → every address the name resolves to, as strings."""

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LOOSE_IPV4 = re.compile(r"^[0-9a-fx.]+$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class OutboundError(Exception):
    """An outbound request was refused or failed; ``str(exc)`` is a message for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BlockedUrl(OutboundError):
    """The outbound policy refuses this URL (scheme, userinfo, port, address, redirect)."""


class FetchFailed(OutboundError):
    """The target answered, but not with something usable; ``status`` when it was an HTTP answer.

    ``retryable`` is true for failures that may pass later (5xx, 429, timeouts, connections).
    """

    def __init__(self, reason: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.retryable = retryable


@dataclass(frozen=True)
class OutboundPolicy:
    """What the gateway may connect to.

    ``allow_networks`` entries are CIDRs (``10.1.0.0/16``), single addresses, or exact host names
    (``minio.internal``, any address it resolves to is accepted); they re-allow what the
    global-address rule would block (a malformed entry raises ``ValueError``). An entry may name
    one port, and then re-allows only that port: ``127.0.0.2:8080``, ``[::1]:9000``,
    ``10.0.0.0/8:443``, ``minio.internal:9000``. ``allowed_ports`` of ``None`` allows every port.
    """

    allow_http: bool = False
    allow_networks: Sequence[str] = ()
    allowed_ports: Collection[int] | None = None
    _networks: tuple[tuple[_Network, int | None], ...] = field(
        init=False, repr=False, compare=False
    )
    _hosts: frozenset[tuple[str, int | None]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        networks: list[tuple[_Network, int | None]] = []
        hosts: set[tuple[str, int | None]] = set()
        for entry in self.allow_networks:
            network, host, port = _allow_entry(entry)
            if network is not None:
                networks.append((network, port))
            else:
                hosts.add((host, port))
        object.__setattr__(self, "_networks", tuple(networks))
        object.__setattr__(self, "_hosts", frozenset(hosts))

    def allows_host(self, host: str, port: int | None = None) -> bool:
        """Whether the operator allow-listed this exact host name (on this port)."""
        name = host.lower().rstrip(".")
        return (name, None) in self._hosts or (port is not None and (name, port) in self._hosts)

    def allows_address(self, address: IPAddress, port: int | None = None) -> bool:
        """Whether the address (or the IPv4 address it embeds) is in an allowed network.

        An entry that names a port matches only a request to that port.
        """
        candidates = [address]
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            candidates.append(embedded)
        return any(
            a in net
            for a in candidates
            for net, only in self._networks
            if a.version == net.version and (only is None or only == port)
        )


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_PORT = re.compile(r"[0-9]{1,5}")


def _port(text: str, entry: str) -> int:
    if not _PORT.fullmatch(text) or not 0 < int(text) < 65536:
        raise ValueError(f"not a port in {entry!r}: {text!r}")
    return int(text)


def _allow_entry(entry: str) -> tuple[_Network | None, str, int | None]:
    """``(network, "", port)`` or ``(None, host, port)`` of one allow-list entry; port optional.

    A bare IPv6 address is all colons, so an IPv6 entry names a port only in brackets.
    """
    text = entry.strip()
    port: int | None = None
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"not a network or host name: {entry!r}")
        text, port = inside, (_port(rest[1:], entry) if rest else None)
    else:
        try:
            return ipaddress.ip_network(text, strict=False), "", None
        except ValueError:
            pass
        if text.count(":") == 1:
            text, _, digits = text.partition(":")
            port = _port(digits, entry)
    try:
        return ipaddress.ip_network(text, strict=False), "", port
    except ValueError:
        if "/" in text or ":" in text or not text:  # meant as a network: a typo must not pass
            raise ValueError(f"not a network or host name: {entry!r}") from None
    return None, text.lower().rstrip("."), port


@dataclass(frozen=True)
class ParsedTarget:
    """A URL that passed the URL-only rules. ``literal`` is set when the host is an IP address."""

    url: httpx2.URL
    scheme: str
    host: str
    port: int
    literal: IPAddress | None


@dataclass(frozen=True)
class CheckedTarget:
    """A target whose every address passed the policy; connect only to ``addresses``."""

    target: ParsedTarget
    addresses: tuple[IPAddress, ...]


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def forbidden_reason(address: IPAddress) -> str | None:
    """Why the address is not globally routable (``"a private address"``), or ``None``.

    ``is_global`` alone is not enough on Python 3.11 (it calls 224.0.0.1 global), so the
    categories are checked one by one. An IPv6 address that carries an IPv4 address (mapped,
    NAT64 ``64:ff9b::/96``, 6to4) is judged by the IPv4 address alone.
    """
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        # The packet really goes to the embedded address (mapped socket, NAT64 gateway, 6to4
        # relay); judging the wrapper would block every IPv4 host on an IPv6-only network.
        inner = forbidden_reason(embedded)
        return None if inner is None else f"{inner} embedded in an IPv6 address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address == ipaddress.IPv4Address("169.254.169.254"):
        return "the cloud metadata address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address == ipaddress.IPv4Address("255.255.255.255"):
        return "the broadcast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a shared (CGNAT) address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "a non-global address"
    return None


def _parse_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    # inet_aton accepts what resolvers accept: 127.1, 2130706433, 0x7f.1, 017700000001.
    if _LOOSE_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def check_url(url: str | httpx2.URL, policy: OutboundPolicy | None = None) -> ParsedTarget:
    """Apply the URL-only rules; raise ``BlockedUrl`` naming the rule that failed.

    An IP-literal host is judged here too, since no resolution will happen for it.
    """
    policy = policy or OutboundPolicy()
    try:
        parsed = url if isinstance(url, httpx2.URL) else httpx2.URL(url)
    except (httpx2.InvalidURL, TypeError) as exc:
        raise BlockedUrl(f"is not a valid URL ({exc})") from None
    scheme = parsed.scheme
    allowed = ("https", "http") if policy.allow_http else ("https",)
    if scheme not in allowed:
        given = f"not {scheme!r}" if scheme else "and has no scheme"
        raise BlockedUrl(f"must use {' or '.join(allowed)}, {given}")
    if parsed.userinfo:
        raise BlockedUrl("must not carry a user name or password")
    host = parsed.raw_host.decode("ascii").lower().rstrip(".")  # IDNA names in their xn-- form
    if not host:
        raise BlockedUrl("has no host")
    port = parsed.port or _DEFAULT_PORTS[scheme]
    if policy.allowed_ports is not None and port not in policy.allowed_ports:
        raise BlockedUrl(f"uses port {port}, which is not allowed")
    literal = _parse_literal(host)
    if literal is not None and not policy.allows_address(literal, port):
        reason = forbidden_reason(literal)
        if reason is not None:
            raise BlockedUrl(f"is {reason} ({literal})")
    return ParsedTarget(url=parsed, scheme=scheme, host=host, port=port, literal=literal)


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """Every address ``getaddrinfo`` returns for the name (IPv6 scope ids dropped)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]).split("%", 1)[0] for info in infos]


async def check_target(
    policy: OutboundPolicy,
    url: str | httpx2.URL,
    *,
    resolver: Resolver | None = None,
) -> CheckedTarget:
    """Apply every rule, resolution included; the answer lists the addresses one may dial.

    Refuses when **any** resolved address is forbidden, not only the first: a client that
    later picks another record (happy eyeballs, retries) must not reach a private one.
    """
    target = check_url(url, policy)
    if target.literal is not None:
        return CheckedTarget(target, (target.literal,))
    try:
        answers = await (resolver or system_resolver)(target.host, target.port)
    except OSError as exc:
        raise BlockedUrl(f"does not resolve ({exc})") from None
    addresses: list[IPAddress] = []
    for answer in answers:
        try:
            address = ipaddress.ip_address(answer)
        except ValueError:
            raise BlockedUrl(f"resolves to an unusable address ({answer!r})") from None
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise BlockedUrl("does not resolve")
    if not policy.allows_host(target.host, target.port):
        for address in addresses:
            reason = forbidden_reason(address)
            if reason is not None and not policy.allows_address(address, target.port):
                raise BlockedUrl(f"resolves to {reason} ({address})")
    return CheckedTarget(target, tuple(addresses))


@functools.cache
def default_tls() -> ssl.SSLContext:
    """The system's default TLS context, built once per process: loading the CA bundle costs
    ~20-40 ms, and every runtime makes several clients. A context may be shared by clients."""
    return httpx2.create_ssl_context()


class GuardedTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport that checks every request and connects only to a checked address.

    ``inner`` is the transport that really sends (by default an ``AsyncHTTPTransport`` without
    keep-alive and without environment proxies, which would resolve the name themselves);
    tests pass a recording transport. Up to ``max_addresses`` checked addresses are tried in
    resolver order when connecting fails (nothing was sent on a ``ConnectError``).
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        resolver: Resolver | None = None,
        inner: httpx2.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
        max_addresses: int = 3,
    ) -> None:
        self.policy = policy
        self._resolver = resolver
        self._max_addresses = max_addresses
        self._inner = inner or httpx2.AsyncHTTPTransport(
            verify=default_tls() if verify is True else verify,
            trust_env=False,
            limits=httpx2.Limits(max_keepalive_connections=0),
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        checked = await check_target(self.policy, request.url, resolver=self._resolver)
        extensions = dict(request.extensions)
        if checked.target.scheme == "https" and checked.target.literal is None:
            extensions["sni_hostname"] = checked.target.host
        last: httpx2.ConnectError | None = None
        for address in checked.addresses[: self._max_addresses]:
            pinned = httpx2.Request(
                request.method,
                request.url.copy_with(host=str(address)),
                headers=request.headers,  # keeps the original Host header
                stream=request.stream,
                extensions=extensions,
            )
            try:
                return await self._inner.handle_async_request(pinned)
            except httpx2.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    async def aclose(self) -> None:
        await self._inner.aclose()


def guarded_client(
    policy: OutboundPolicy,
    timeout: float = 30.0,
    *,
    resolver: Resolver | None = None,
    inner: httpx2.AsyncBaseTransport | None = None,
    verify: ssl.SSLContext | bool = True,
    headers: dict[str, str] | None = None,
) -> httpx2.AsyncClient:
    """An ``AsyncClient`` whose every request goes through ``GuardedTransport``.

    It never follows redirects and ignores the environment (proxies, ``.netrc``). The caller
    closes it (``async with`` or ``aclose``). ``verify`` is passed to the default inner
    transport (an ``ssl.SSLContext`` in tests that use their own CA).
    """
    return httpx2.AsyncClient(
        transport=GuardedTransport(policy, resolver=resolver, inner=inner, verify=verify),
        follow_redirects=False,
        trust_env=False,
        timeout=timeout,
        headers=headers,
    )


async def fetch_bytes(
    client_or_policy: httpx2.AsyncClient | OutboundPolicy,
    url: str,
    *,
    max_bytes: int,
    timeout: float = 30.0,
    resolver: Resolver | None = None,
) -> tuple[bytes, str | None]:
    """GET ``url`` through the guard; the body and its media type (without parameters).

    ``timeout`` bounds the whole download, not only each read, so a server trickling bytes
    cannot hold a worker. The body is abandoned as soon as it passes ``max_bytes`` (the
    ``Content-Length`` is checked first). A 3xx raises ``BlockedUrl`` (redirects would let a
    checked public URL bounce to an internal one); any other non-2xx raises ``FetchFailed``.
    Given a policy, a client is made for this one call (``resolver`` applies to it only).
    """
    if isinstance(client_or_policy, OutboundPolicy):
        async with guarded_client(client_or_policy, timeout, resolver=resolver) as client:
            return await fetch_bytes(client, url, max_bytes=max_bytes, timeout=timeout)
    client = client_or_policy
    try:
        with anyio.fail_after(timeout):
            async with client.stream(
                "GET", url, headers={"Accept-Encoding": "identity"}, timeout=timeout
            ) as response:
                return await _read_capped(response, max_bytes)
    except TimeoutError:
        raise FetchFailed(f"did not finish within {timeout:g} s", retryable=True) from None
    except httpx2.TimeoutException:
        raise FetchFailed(f"gave no answer within {timeout:g} s", retryable=True) from None
    except httpx2.TransportError as exc:
        raise FetchFailed(
            f"could not be reached ({exc.__class__.__name__}: {exc})", retryable=True
        ) from None


async def _read_capped(response: httpx2.Response, max_bytes: int) -> tuple[bytes, str | None]:
    status = response.status_code
    if 300 <= status < 400:
        location = response.headers.get("location", "")[:200]
        raise BlockedUrl(f"answered with a redirect (HTTP {status} to {location!r}), not followed")
    if not 200 <= status < 300:
        raise FetchFailed(
            f"answered HTTP {status}", status=status, retryable=status == 429 or status >= 500
        )
    declared = response.headers.get("content-length")
    if (
        declared is not None
        and declared.isascii()
        and declared.isdigit()
        and (len(declared) > 18 or int(declared) > max_bytes)
    ):
        raise FetchFailed(f"is larger than {max_bytes} bytes ({declared} declared)")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise FetchFailed(f"is larger than {max_bytes} bytes")
    content_type = response.headers.get("content-type")
    media = content_type.split(";", 1)[0].strip().lower() if content_type else None
    return bytes(body), media or None
