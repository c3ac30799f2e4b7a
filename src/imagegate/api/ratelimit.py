"""Where a key's ``RateLimit-*`` fields wait for the response of an authenticated request.

The authentication dependency (``imagegate.api.deps``) counts the request and leaves the fields
in the request's state; the edge (``imagegate.api.middleware``) copies them onto the response as
it starts, whatever made the response: a route's body, a route's own ``Response``, or an error
handler (a 404 after authentication, the 429 of a spent budget). Unauthenticated responses carry
none.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request

__all__ = ["STATE_KEY", "remember_headers"]

STATE_KEY = "ratelimit_headers"


def remember_headers(request: Request, headers: Mapping[str, str]) -> None:
    """Leave ``headers`` for the edge to add to this request's response."""
    setattr(request.state, STATE_KEY, dict(headers))
