"""Dependencies as ``Annotated`` aliases, so route signatures read like prose."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from imagegate.api.ratelimit import remember_headers
from imagegate.errors import RateLimited
from imagegate.runtime import Runtime
from imagegate.services.accounts import Caller
from imagegate.services.limits import rate_kind

__all__ = ["CallerDep", "RuntimeDep", "api_key_from", "caller_of", "runtime_of"]


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _runtime(request: Request) -> Runtime:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, a trip per request.
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


def api_key_from(request: Request) -> str | None:
    """``X-API-Key``, or ``Authorization: Bearer <key>``."""
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def _caller(request: Request, runtime: RuntimeDep) -> Caller:
    """The authenticated caller, once its key's rate budget allows this request (else 429).

    The key's ``RateLimit-*`` fields go on the response whatever it turns out to be.
    """
    caller = await runtime.keys.authenticate(api_key_from(request))
    try:
        state = await runtime.limiter.hit(caller, rate_kind(request.method))
    except RateLimited as exc:
        remember_headers(request, exc.headers)
        raise
    if state is not None:
        remember_headers(request, state.headers())
    return caller


CallerDep = Annotated[Caller, Depends(_caller)]


async def caller_of(request: Request) -> Caller:
    """What ``CallerDep`` gives, as a plain call. The busiest routes (submit, read a job) use it
    and read their headers themselves: FastAPI's dependency and header solving cost more than
    the rest of such a request."""
    return await _caller(request, runtime_of(request))
