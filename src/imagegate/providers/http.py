"""What every HTTP adapter shares: the client factory and the status → error mapping.

Adapters call ``raise_for_upstream(response, provider, ...)`` after each vendor call; it maps the
status to the normalized taxonomy of ``imagegate.errors`` (vendor-specific moderation signals are
checked by the adapter *before* calling it). ``redact`` keeps secrets out of logs.
"""

from __future__ import annotations

import asyncio
import binascii
import functools
import json
import logging
import re
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import aiohttp
import httpx2
import orjson
import pybase64
import structlog

from imagegate.errors import (
    UpstreamError,
    UpstreamMisconfigured,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamRetryable,
)
from imagegate.net.guard import default_tls
from imagegate.net.retry_after import retry_after_seconds
from imagegate.net.transport import AiohttpTransport, timeouts

__all__ = [
    "VendorClient",
    "clean_message",
    "create_client",
    "decode_base64",
    "json_object",
    "json_object_off_loop",
    "malformed",
    "parse_off_loop",
    "post_json",
    "raise_for_upstream",
    "redact",
    "transport_error",
]

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
_SECRET_HEADERS = frozenset({"authorization", "x-key", "api-key", "x-goog-api-key", "x-api-key"})

log = structlog.get_logger("imagegate.upstream")
_stdlib_log = logging.getLogger("imagegate.upstream")

_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
"""httpx2's encoding of a ``json=`` body (``httpx2._content.encode_json``), made once."""
_JSON_TYPE = ("Content-Type", "application/json")

POOL_FLOOR = 20
"""The fewest connections a vendor's pool keeps (httpx's default keep-alive count)."""
POOL_MARGIN = 8
"""Connections beyond the provider's cap, for calls the cap does not count (cancels)."""


class VendorClient(httpx2.AsyncClient):
    """httpx2's client, remembering the URLs it built from ``base_url`` and a path.

    httpx2 parses and merges the URL of every request in pure Python, character by character:
    ~170 µs of a vendor call, most of it for the same few paths each time. A merge depends only
    on the path given and the base URL, so it is kept (up to ``MERGED_URLS``, then forgotten
    wholesale: poll paths carry task ids and never repeat).

    A request without credentials in its URL or the client (every vendor sends its key as a
    header) goes straight to the redirect handling, past httpx2's auth flow: that flow is a
    coroutine and two generators that do nothing for such a request, yet each call waiting on
    its vendor keeps them, and each full garbage collection walks what thousands of calls keep.
    """

    MERGED_URLS = 256

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._merged: dict[str, tuple[httpx2.URL, httpx2.URL]] = {}
        self._timeouts: tuple[httpx2.Timeout, aiohttp.ClientTimeout] | None = None

    def _send_handling_auth(
        self,
        request: httpx2.Request,
        auth: httpx2.Auth,
        follow_redirects: bool,
        history: list[httpx2.Response],
    ) -> Coroutine[Any, Any, httpx2.Response]:
        if type(auth) is httpx2.Auth:  # the base class: it sends the request as it is
            return self._send_handling_redirects(
                request, follow_redirects=follow_redirects, history=history
            )
        return super()._send_handling_auth(request, auth, follow_redirects, history)

    async def post_json(self, url: str, payload: Any) -> httpx2.Response:
        """``post(url, json=payload)``: the same request on the wire, the same answer and errors.

        With the vendor's own aiohttp transport and nothing of httpx2's sending layers to apply
        (no auth flow, cookies, query parameters, proxy or request hook; the response hook's
        DEBUG line off), the body is encoded as httpx2 encodes it and handed to the transport
        directly (``AiohttpTransport.send``), without building an ``httpx2.Request`` and
        passing it down ``send``'s five coroutines: 537 → 452 µs of the event loop's CPU per
        call to the benchmark's upstream (88 KB answers, sequential, medians of 5 alternated
        rounds). Anything else, a cookie kept or a closed client, goes through ``post``.
        """
        merged = self._merge_url(url)
        transport = self._transport
        if not (
            isinstance(transport, AiohttpTransport)
            and self._transport_for_url(merged) is transport
            and self._auth is None
            and not merged.userinfo
            and not self.cookies
            and not self.params
            and not self.is_closed
            and not self._event_hooks["request"]
            and self._event_hooks["response"] == [_log_response]
            and not _stdlib_log.isEnabledFor(logging.DEBUG)
        ):
            return await self.post(url, json=payload)
        body = _JSON.encode(payload).encode()
        headers = [*self.headers.multi_items(), _JSON_TYPE]
        if self._timeouts is None or self._timeouts[0] is not self.timeout:
            self._timeouts = (self.timeout, timeouts(self.timeout.as_dict()))
        response = await transport.send(
            "POST",
            str(merged),
            headers,
            body,
            self._timeouts[1],
            lambda: self.build_request("POST", url, json=payload),
        )
        try:
            await response.aread()
        except BaseException:
            await response.aclose()
            raise
        if "set-cookie" in response.headers:  # kept for the next call, as httpx2 keeps them
            response.request = self.build_request("POST", url, json=payload)
            self.cookies.extract_cookies(response)
        return response

    def _merge_url(self, url: httpx2.URL | str) -> httpx2.URL:
        if not isinstance(url, str):
            return super()._merge_url(url)
        known = self._merged.get(url)
        if known is not None and known[0] is self.base_url:
            return known[1]
        merged = super()._merge_url(url)
        if len(self._merged) >= self.MERGED_URLS:
            self._merged.clear()
        self._merged[url] = (self.base_url, merged)
        return merged


async def post_json(client: httpx2.AsyncClient, url: str, payload: Any) -> httpx2.Response:
    """``client.post(url, json=payload)``, by ``VendorClient.post_json`` when it is one."""
    if isinstance(client, VendorClient):
        return await client.post_json(url, payload)
    return await client.post(url, json=payload)


def create_client(
    base_url: str,
    headers: Mapping[str, str],
    *,
    timeout: float,
    connections: int = POOL_FLOOR,
    transport: Any = None,
) -> httpx2.AsyncClient:
    """An ``AsyncClient`` for one vendor; ``transport`` is injected by tests, else the calls go
    through aiohttp (``net.transport``).

    ``connections`` is how many calls the vendor account takes at once (the provider's
    ``max_concurrency``): the pool holds that many connections open, and keeps them alive
    between calls, so the vendor's cap, not the pool, bounds the calls in flight. Calls outside
    the cap (a cancel, an input download) get ``POOL_MARGIN`` more.
    """
    size = max(connections, POOL_FLOOR) + POOL_MARGIN
    return VendorClient(
        base_url=base_url,
        headers=dict(headers),
        timeout=httpx2.Timeout(timeout, connect=10.0),
        limits=httpx2.Limits(max_connections=size, max_keepalive_connections=size),
        transport=transport or AiohttpTransport(connections=size, tls=default_tls()),
        verify=default_tls(),
        follow_redirects=False,
        event_hooks={"response": [_log_response]},
    )


async def _log_response(response: httpx2.Response) -> None:
    if not _stdlib_log.isEnabledFor(logging.DEBUG):
        return  # built for every vendor answer otherwise, then dropped by the level
    request = response.request
    log.debug(
        "upstream.response",
        method=request.method,
        url=str(request.url.copy_with(query=None)),
        status=response.status_code,
        request_headers=redact(request.headers),
    )


def redact(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers with credentials replaced, safe to log."""
    return {
        key: ("[redacted]" if key.lower() in _SECRET_HEADERS else value)
        for key, value in headers.items()
    }


_WHITESPACE = re.compile(r"\s+")


def clean_message(message: Any, limit: int = 500) -> str:
    """A vendor's error text made safe to show a client: one line, bounded."""
    text = _WHITESPACE.sub(" ", str(message)).strip()
    return text[:limit] + ("…" if len(text) > limit else "")


def raise_for_upstream(
    response: httpx2.Response,
    provider: str,
    message: str | None = None,
) -> None:
    """Raise the normalized error for a non-2xx answer; return quietly on 2xx.

    ``message`` is the vendor's own error text when the adapter extracted it from the body.
    """
    status = response.status_code
    if status < 300:
        return
    text = clean_message(message or response.reason_phrase or f"HTTP {status}")
    if status == 429:
        raise UpstreamRateLimited(
            f"{provider} is rate limiting us: {text}",
            provider=provider,
            retry_after=retry_after_seconds(response.headers),
        )
    if status in RETRYABLE_STATUSES:
        raise UpstreamRetryable(
            f"{provider} answered {status}: {text}",
            provider=provider,
            retry_after=retry_after_seconds(response.headers),
        )
    if status == 404:
        # Pollers turn a 404 on a task into UpstreamTaskLost before calling this; anywhere else
        # the model or endpoint is gone (retired upstream): the route is dead, not the input.
        raise UpstreamMisconfigured(
            f"{provider} does not serve this model or endpoint (404): {text}", provider=provider
        )
    if status in (401, 403):
        raise UpstreamMisconfigured(
            f"{provider} refused our credentials: {text}", provider=provider
        )
    if 400 <= status < 500:
        raise UpstreamRejected(f"Provider returned an error: {text}", provider=provider)
    raise UpstreamError(f"{provider} answered {status}: {text}", provider=provider)


def malformed(provider: str, what: str, *, polling: bool = False) -> UpstreamError:
    """An answer we cannot use: ``what`` says how it is wrong.

    A poll is a safe repeat, so it is asked again. A submit may already have been billed and left
    us no task to follow, so the job fails (refunded) instead of paying twice.
    """
    if polling:
        return UpstreamRetryable(f"{provider} answered a poll with {what}", provider=provider)
    return UpstreamRejected(
        f"{provider} answered the submit with {what}; not retried because the provider may "
        "already have charged for it",
        provider=provider,
    )


def json_object(
    response: httpx2.Response, provider: str, *, polling: bool = False
) -> dict[str, Any]:
    """The JSON object of a 2xx answer; anything else is ``malformed``.

    Decoded by ``orjson``: an OpenAI answer carries its image as ~90 KB of base64 in one JSON
    string, which the standard library's decoder takes about twice as long to build. orjson
    also refuses what is not JSON (``NaN``, nesting deeper than 1,024 levels, text that is not
    UTF-8) with a ``ValueError`` where the standard library accepts ``NaN`` or raises
    ``RecursionError``.
    """
    if not response.content.strip():
        raise malformed(provider, "an empty body", polling=polling)
    try:
        body = orjson.loads(response.content)
    except ValueError:
        raise malformed(provider, "a body that is not JSON", polling=polling) from None
    if not isinstance(body, dict):
        what = f"a JSON {type(body).__name__} instead of an object"
        raise malformed(provider, what, polling=polling)
    return body


LARGE_JSON_BYTES = 256 * 1024
"""From this size on an answer is parsed in a worker thread: base64 images make answers of
many megabytes, and ``json.loads`` of 20 MB holds the event loop for tens of milliseconds."""


async def parse_off_loop(response: httpx2.Response, parse: Callable[[httpx2.Response], T]) -> T:
    """``parse(response)``, in a worker thread when the answer is large enough to block the
    event loop; small answers are parsed in place (a thread hop costs more than they do)."""
    if len(response.content) < LARGE_JSON_BYTES:
        return parse(response)
    return await asyncio.to_thread(parse, response)


async def json_object_off_loop(
    response: httpx2.Response, provider: str, *, polling: bool = False
) -> dict[str, Any]:
    """``json_object`` by way of ``parse_off_loop``."""
    return await parse_off_loop(
        response, functools.partial(json_object, provider=provider, polling=polling)
    )


BASE64_SLICE = 1 << 20
"""Characters of base64 decoded per C call (a multiple of 4): about 0.15 ms each."""


def decode_base64(encoded: str | bytes) -> bytes:
    """``base64.b64decode(encoded, validate=True)``, for images of any size, in a worker thread.

    Decoded by ``pybase64`` (SIMD): the standard library's decoder takes about 250 µs of a
    worker's CPU for one 64 KB image, ``pybase64`` about 10 µs. A decoder keeps the GIL for its
    whole run, so a large image is decoded in slices and the thread lets the GIL go between
    them. Anything that is not strict base64 (a character outside the alphabet, padding before
    the end, a wrong length, a non-ASCII character) raises ``binascii.Error``.
    """
    if len(encoded) <= BASE64_SLICE:
        # A str is decoded as it is: encoding it to bytes first copied ~90 KB for a 64 KB
        # image on the event loop (~3 µs). pybase64 refuses a character past Latin-1 with a
        # plain ValueError (one within it as a digit outside the alphabet).
        try:
            return pybase64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise
        except ValueError:
            raise binascii.Error("a non-ASCII character in base64") from None
    if isinstance(encoded, str):
        try:
            encoded = encoded.encode("ascii")
        except UnicodeEncodeError:
            raise binascii.Error("a non-ASCII character in base64") from None
    if encoded.find(b"=", 0, len(encoded) - 2) != -1:
        raise binascii.Error("padding before the end of base64")
    view = memoryview(encoded)
    return b"".join(
        pybase64.b64decode(view[start : start + BASE64_SLICE], validate=True)
        for start in range(0, len(encoded), BASE64_SLICE)
    )


def transport_error(exc: httpx2.TransportError, provider: str, *, sent: bool) -> UpstreamError:
    """Classify a connection failure.

    A failure before the request was sent (connect errors) is always safe to retry. A read
    timeout *after* a synchronous, paid POST was sent may already have been billed upstream; the
    adapter passes ``sent=True`` for those and the job fails instead of paying twice.
    """
    if (
        isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.PoolTimeout)
        or not sent
    ):
        return UpstreamRetryable(f"{provider} unreachable: {exc!r}", provider=provider)
    return UpstreamRejected(
        f"{provider} did not answer in time after the request was sent; not retried because "
        "the provider may already have charged for it",
        provider=provider,
    )
