"""The ASGI edge of every request, in one pure-ASGI layer: request ids, request metrics, a cap
on request body size (413 beyond it), NUL refusal, a key's ``RateLimit-*`` fields, and the last
word on errors nothing else handled.

One layer wraps ``send`` and ``receive`` once per request: as six stacked middlewares these jobs
cost about as much CPU as a whole bare FastAPI request. Each job keeps the place it had in that
stack (outermost first): the request id (every answer carries it, every log line of the request
is bound to it), the request count, the error boundary, the NUL check, the body limit, the
rate-limit fields. So the 400 of a NUL and the 413 of a declared length are counted and carry
the id, and the answers of the error boundary carry no ``RateLimit-*`` fields.

Starlette's own last-resort handler re-raises after answering, which makes the server log every
error a second time; here an error is answered and logged once. A client that went away
mid-request is no error at all: one debug line, nothing answered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import structlog
import uuid_utils
from prometheus_client import Counter
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagegate.api.errors import error_response, unexpected_response
from imagegate.api.hotroutes import HotRoutes
from imagegate.api.ratelimit import STATE_KEY
from imagegate.errors import PayloadTooLarge, ValidationFailed

__all__ = ["REQUEST_ID", "EdgeMiddleware"]

log = structlog.get_logger("imagegate.api")

REQUEST_ID = re.compile(rb"[A-Za-z0-9][A-Za-z0-9_.:+=/-]{0,127}")
"""An ``X-Request-Id`` kept as the client sent it: up to 128 characters a log search, a header
and a JSON string carry unchanged (a UUID, a ULID, ``req_…``, a trace id). Anything else (too
long, spaces, quotes, control or non-ASCII characters) is replaced by a new id."""

NUL_RULE = "must not contain a NUL character (\\u0000)"


class EdgeMiddleware:
    """Every job of the edge, for each HTTP request (other scopes pass through untouched).

    - Request id: echo ``X-Request-Id`` (or make one) and bind it to every log line of the
      request. A well-formed incoming id (``REQUEST_ID``) is kept, so a client or a proxy can
      follow one request through its own logs and ours; a malformed one is replaced, never
      trimmed, so an id in our logs is always one that was answered.
    - Metrics: count every answered request in ``counter`` by method, route template and status.
      The route is the template (``/v2/jobs/{id}``), never the path, so the label set stays
      small; a request no route matched (404s, static files) counts as ``unmatched``.
    - Error boundary: answer 500 (or 503) for an error no handler took, logged once. A request
      counts as abandoned once the server reported ``http.disconnect`` to the app, or when the
      error is Starlette's ``ClientDisconnect``: whatever failed after that failed because the
      client left, and nobody is there to answer.
    - NUL: 400 for a NUL character in the path, a query parameter or a header, naming where.
      PostgreSQL text refuses NUL while SQLite stores it; refusing it at the edge makes both
      engines answer alike (JSON bodies are checked by ``imagegate.api.bodies``).
    - Body limit: refuse bodies over ``limit`` bytes, at once from ``Content-Length``, else while
      streaming. ``overrides`` maps a path prefix to its own limit (uploads take larger files).
    - Rate limits: the authentication (``imagegate.api.deps``) leaves a key's ``RateLimit-*``
      fields in the request's state; they go on the response as it starts, whatever made it (a
      route, an error handler: a 404 after authentication, the 429 of a spent budget).
      Unauthenticated responses carry none.
    - Hot routes: ``hot`` serves the busiest routes below FastAPI's routing (``HotRoutes``);
      every other request goes on to ``app``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        counter: Counter,
        limit: int,
        overrides: Mapping[str, int] | None = None,
        hot: HotRoutes | None = None,
    ) -> None:
        self.app = app
        self.counter = counter
        self.limit = limit
        self.overrides = dict(overrides or {})
        self.hot = hot
        self._children: dict[tuple[str, str, int], Any] = {}

    def _limit_for(self, path: str) -> int:
        for prefix, limit in self.overrides.items():
            if path.startswith(prefix):
                return limit
        return self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = declared = b""
        nul_header: bytes | None = None
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        for name, value in headers:  # the last of repeated headers wins, as in a dict
            if name == b"x-request-id":
                incoming = value
            elif name == b"content-length":
                declared = value
            if nul_header is None and b"\x00" in value:
                nul_header = name
        request_id = (
            incoming.decode("ascii") if REQUEST_ID.fullmatch(incoming) else uuid_utils.uuid4().hex
        )
        request_id_field = (b"x-request-id", request_id.encode("latin-1"))
        state: dict[str, Any] = scope.setdefault("state", {})
        status = 0
        started = disconnected = False
        limit = self._limit_for(scope["path"])
        seen = 0

        async def edge_send(message: Message) -> None:
            """Outside the error boundary: the request id, and the status to count."""
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
                message["headers"] = [*message.get("headers", ()), request_id_field]
            await send(message)

        async def app_send(message: Message) -> None:
            """The app's answers: the rate-limit fields too."""
            if message["type"] == "http.response.start":
                fields = state.get(STATE_KEY)
                if fields:
                    message["headers"] = [
                        *message.get("headers", ()),
                        *(
                            (name.lower().encode("latin-1"), value.encode("latin-1"))
                            for name, value in fields.items()
                        ),
                    ]
            await edge_send(message)

        async def app_receive() -> Message:
            nonlocal disconnected, seen
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
            elif message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(f"Request body is larger than {limit} bytes")
            return message

        bound = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            try:
                where = _nul_location(scope, nul_header)
                if where is not None:
                    refusal = error_response(ValidationFailed.field(where, NUL_RULE))
                    await refusal(scope, receive, edge_send)
                elif declared and _too_long(declared, limit):
                    await _too_large(edge_send, limit)
                elif self.hot is None or not await self.hot(scope, app_receive, app_send):
                    await self.app(scope, app_receive, app_send)
            except Exception as exc:
                if disconnected or isinstance(exc, ClientDisconnect):
                    log.debug("api.client_disconnected", path=scope["path"])
                    return
                response = unexpected_response(exc, scope["path"])
                if not started:
                    await response(scope, receive, edge_send)
        finally:
            if status:  # else the client left before any answer
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                self._count(scope["method"], route, status)
            structlog.contextvars.reset_contextvars(**bound)

    def _count(self, method: str, route: str, status: int) -> None:
        labels = (method, route, status)
        child = self._children.get(labels)
        if child is None:  # labels() takes a lock and builds the label tuple on every call
            child = self._children[labels] = self.counter.labels(method, route, str(status))
        child.inc()


def _nul_location(scope: Scope, nul_header: bytes | None) -> str | None:
    if "\x00" in scope["path"]:
        return "path"
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                return name.replace("\x00", "") or "query"
    return None if nul_header is None else nul_header.decode("latin-1")


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
