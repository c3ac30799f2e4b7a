"""Dependencies as ``Annotated`` aliases, so route signatures read like prose."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from imagegate.runtime import Runtime
from imagegate.services.accounts import Caller, authenticate

__all__ = ["CallerDep", "RuntimeDep", "api_key_from"]


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


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
    return await authenticate(runtime.db, api_key_from(request))


CallerDep = Annotated[Caller, Depends(_caller)]
