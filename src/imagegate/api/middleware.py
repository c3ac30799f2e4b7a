"""ASGI middleware: request ids, a cap on request body size (413 beyond it), and the last word on
errors nothing else handled.

``ErrorBoundaryMiddleware`` sits inside ``RequestIdMiddleware`` (so its lines carry the request
id) and outside every route. Starlette's own last-resort handler re-raises after answering, which
makes the server log every error a second time; here an error is answered and logged once.
A client that went away mid-request is no error at all: one debug line, nothing answered.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from urllib.parse import parse_qsl

import structlog
from prometheus_client import Counter
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagegate.api.errors import error_response, unexpected_response
from imagegate.errors import PayloadTooLarge, ValidationFailed

__all__ = [
    "REQUEST_ID",
    "BodyLimitMiddleware",
    "ErrorBoundaryMiddleware",
    "NulRejectMiddleware",
    "RequestIdMiddleware",
    "RequestMetricsMiddleware",
]

log = structlog.get_logger("imagegate.api")

REQUEST_ID = re.compile(rb"[A-Za-z0-9][A-Za-z0-9_.:+=/-]{0,127}")
"""An ``X-Request-Id`` kept as the client sent it: up to 128 characters a log search, a header
and a JSON string carry unchanged (a UUID, a ULID, ``req_…``, a trace id). Anything else (too
long, spaces, quotes, control or non-ASCII characters) is replaced by a new id."""


class RequestIdMiddleware:
    """Echo ``X-Request-Id`` (or make one) and bind it to every log line of the request.

    A well-formed incoming id (``REQUEST_ID``) is kept, so a client or a proxy can follow one
    request through its own logs and ours; a malformed one is replaced, never trimmed, so an id
    in our logs is always one that was answered.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"")
        request_id = (
            incoming.decode("ascii") if REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        )

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, send_with_id)


class RequestMetricsMiddleware:
    """Count every answered request by method, route template and status.

    The route is the template (``/v2/jobs/{id}``), never the path, so the label set stays
    small; a request no route matched (404s, static files) counts as ``unmatched``. Placed
    outside ``ErrorBoundaryMiddleware``, so the 500s it answers are counted too.
    """

    def __init__(self, app: ASGIApp, counter: Counter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def counted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counted_send)
        finally:
            if status:  # else the client left before any answer
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                self.counter.labels(scope["method"], route, str(status)).inc()


class ErrorBoundaryMiddleware:
    """Answer 500 (or 503) for an error no handler took, logged once; ignore clients gone away.

    A request counts as abandoned once the server reported ``http.disconnect`` to the app, or
    when the error is Starlette's ``ClientDisconnect``: whatever failed after that failed because
    the client left, and nobody is there to answer.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        disconnected = False
        started = False

        async def watched_receive() -> Message:
            nonlocal disconnected
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, watched_receive, watched_send)
        except Exception as exc:
            if disconnected or isinstance(exc, ClientDisconnect):
                log.debug("api.client_disconnected", path=scope["path"])
                return
            response = unexpected_response(exc, scope["path"])
            if not started:
                await response(scope, receive, send)


class NulRejectMiddleware:
    """400 for a NUL character in the path, a query parameter or a header, naming where.

    PostgreSQL text refuses NUL while SQLite stores it; refusing it at the edge makes both
    engines answer alike (JSON bodies are checked by ``imagegate.api.bodies``).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            where = _nul_location(scope)
            if where is not None:
                rule = "must not contain a NUL character (\\u0000)"
                await error_response(ValidationFailed.field(where, rule))(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _nul_location(scope: Scope) -> str | None:
    if "\x00" in scope["path"]:
        return "path"
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                return name.replace("\x00", "") or "query"
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for header, raw in headers:
        if b"\x00" in raw:
            return header.decode("latin-1")
    return None


class BodyLimitMiddleware:
    """Refuse bodies over ``limit`` bytes: at once from ``Content-Length``, else while streaming.

    ``overrides`` maps a path prefix to its own limit (uploads take larger files).
    """

    def __init__(
        self, app: ASGIApp, limit: int, overrides: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.overrides = dict(overrides or {})

    def _limit_for(self, path: str) -> int:
        for prefix, limit in self.overrides.items():
            if path.startswith(prefix):
                return limit
        return self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and _too_long(declared, limit):
            await _too_large(send, limit)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(f"Request body is larger than {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)


def _too_long(declared: bytes, limit: int) -> bool:
    """Whether a ``Content-Length`` declares more than ``limit``; one of many digits always does."""
    return declared.isdigit() and (len(declared) > 18 or int(declared) > limit)


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {"error": f"Request body is larger than {limit} bytes", "code": "payload_too_large"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
