"""ASGI middleware that puts a key's ``RateLimit-*`` fields on every authenticated response.

The authentication dependency (``imagegate.api.deps``) counts the request and leaves the fields
in the request's state; this middleware copies them onto the response as it starts, whatever
made the response: a route's body, a route's own ``Response``, or an error handler (a 404 after
authentication, the 429 of a spent budget). Unauthenticated responses carry none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["STATE_KEY", "RateLimitHeadersMiddleware", "remember_headers"]

STATE_KEY = "ratelimit_headers"


def remember_headers(request: Request, headers: Mapping[str, str]) -> None:
    """Leave ``headers`` for the middleware to add to this request's response."""
    setattr(request.state, STATE_KEY, dict(headers))


class RateLimitHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})

        async def send_with_limits(message: Message) -> None:
            fields = state.get(STATE_KEY)
            if message["type"] == "http.response.start" and fields:
                headers = list(message.get("headers", []))
                headers.extend(
                    (name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in fields.items()
                )
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_limits)
