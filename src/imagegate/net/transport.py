"""``AiohttpTransport``: vendor calls carried by aiohttp under the adapters' ``httpx2`` client.

Adapters build requests and read answers with ``httpx2`` (its models, its errors, the transport
tests inject). Below that, httpx2's own stack (httpcore2's pool, h11, anyio) costs about 1.5 ms
of event-loop CPU per vendor call with a 90 KB answer, six times what aiohttp's C parser and
pool cost for the same call; at hundreds of jobs a second that was the largest item on the
loop. This transport hands each request to an ``aiohttp.ClientSession`` and gives the answer
back as an ``httpx2.Response`` whose body streams from aiohttp, so every adapter, the size caps
of streamed downloads and the error classification (``providers.http.transport_error``) stay
as they are.

What carries over from ``httpx2.AsyncClient``'s settings, and how:

- timeouts (``request.extensions["timeout"]``): ``connect`` bounds the TCP/TLS connect, ``pool``
  plus ``connect`` the wait for a pooled connection and the connect together, ``read`` each
  read of the answer; ``write`` has no aiohttp counterpart (request bodies are small, and are
  handed to the socket at once);
- the pool: ``connections`` at once to any one host, kept alive between calls;
- TLS: the ``SSLContext`` given (``net.guard.default_tls``);
- content encoding: aiohttp passes the body through undecoded and ``httpx2.Response`` decodes
  ``Content-Encoding`` as it always does;
- small answers (``EAGER_BYTES``) come back already read, larger ones as a stream;
- proxies from the environment stay with httpx2 (it mounts its own transports for them), so
  the session does not read the environment.

aiohttp's exceptions become httpx2's: ``ConnectError`` and ``ConnectTimeout`` (no connection,
including none free in the pool in time: nothing was sent), ``ReadTimeout``, ``ReadError`` and
``RemoteProtocolError``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Mapping

import aiohttp
import httpx2

__all__ = ["AiohttpTransport", "timeouts"]

_CHUNK = 64 * 1024
EAGER_BYTES = 256 * 1024
"""An answer that declares at most this many bytes is read whole before the transport returns
(one ``read``, no chunks passed up through httpx2's and aiohttp's iterators); a larger one, or
one without a ``Content-Length``, streams, so a caller's size cap still stops it early."""
_SKIP = frozenset({"host", "content-length", "transfer-encoding", "connection"})
"""Request headers aiohttp writes itself (from the URL and the body it sends)."""
_NO_AUTO = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
"""Headers aiohttp would add when the request has none: only the request's own are sent (a body
without a Content-Type goes without one, as httpx2 sends it)."""


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """An ``httpx2`` transport that sends every request with one ``aiohttp`` session."""

    def __init__(self, *, connections: int, tls: ssl.SSLContext) -> None:
        self._connections = connections
        self._tls = tls
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Made on first use: a session belongs to the event loop that is running then.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=0, limit_per_host=self._connections, ssl=self._tls
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        timeout = timeouts(request.extensions.get("timeout") or {})
        return await self.send(
            request.method,
            str(request.url),
            request.headers.multi_items(),
            body,
            timeout,
            lambda: request,
        )

    async def send(
        self,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        timeout: aiohttp.ClientTimeout,
        request: Callable[[], httpx2.Request],
    ) -> httpx2.Response:
        """Send one request as ``handle_async_request`` sends an ``httpx2.Request``: the same
        headers (``Host``, ``Content-Length``, ``Connection`` written by aiohttp), the same
        answer, the same errors. ``timeout`` comes from ``timeouts``; ``request`` makes the
        ``httpx2.Request`` that an error names, only when there is an error. The answer's
        ``request`` is left unset."""
        try:
            answer = await self._open().request(
                method,
                url,
                headers=[(name, value) for name, value in headers if name.lower() not in _SKIP],
                skip_auto_headers=_NO_AUTO,
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
                compress=None,
            )
        except Exception as exc:
            raise _translate(exc, request()) from exc
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": (answer.reason or "").encode()}
        # bytes pairs, as httpx2's own transport gives
        raw_headers: list[tuple[bytes, bytes]] = list(answer.raw_headers)
        declared = answer.content_length
        if declared is not None and declared <= EAGER_BYTES:
            try:
                content = await answer.read()
            except Exception as exc:
                raise _translate(exc, request()) from exc
            finally:
                answer.release()
            return httpx2.Response(
                answer.status, headers=raw_headers, content=content, extensions=extensions
            )
        return httpx2.Response(
            answer.status,
            headers=raw_headers,
            stream=_AnswerStream(answer, request),
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _AnswerStream(httpx2.AsyncByteStream):
    """The body of one answer, read from aiohttp as ``httpx2`` asks for it."""

    def __init__(
        self, answer: aiohttp.ClientResponse, request: Callable[[], httpx2.Request]
    ) -> None:
        self._answer = answer
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._answer.content.iter_chunked(_CHUNK):
                yield chunk
        except Exception as exc:
            raise _translate(exc, self._request()) from exc

    async def aclose(self) -> None:
        self._answer.release()


def timeouts(given: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
    """aiohttp's timeouts for httpx2's (``Timeout.as_dict()``)."""
    connect, pool = given.get("connect"), given.get("pool")
    waiting = None if connect is None or pool is None else connect + pool
    return aiohttp.ClientTimeout(
        total=None, connect=waiting, sock_connect=connect, sock_read=given.get("read")
    )


def _translate(exc: Exception, request: httpx2.Request) -> Exception:
    """httpx2's exception for what aiohttp raised (anything else passes through unchanged).

    Only a failure to connect says the request was never sent; any other failure of the
    connection may come after the vendor received it (``providers.http.transport_error`` does
    not retry those for a paid call).
    """
    text = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        # The wait for a pooled connection and the connect itself: nothing was sent.
        return httpx2.ConnectTimeout(text, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx2.ConnectError(text, request=request)
    if isinstance(exc, asyncio.TimeoutError):
        return httpx2.ReadTimeout(text, request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx2.RemoteProtocolError(text, request=request)
    if isinstance(exc, aiohttp.ClientResponseError):
        return httpx2.RemoteProtocolError(text, request=request)
    if isinstance(exc, aiohttp.ClientConnectionError):
        return httpx2.ReadError(text, request=request)
    return exc
