"""The busiest routes served below FastAPI's routing: ``POST /v2/images/generate``,
``GET /v2/jobs/{id}`` and ``POST /v1/images/generations``.

Matching a request against every route, solving an endpoint's parameters and passing through
Starlette's exception and exit-stack layers cost more CPU than the rest of such a request. These
are called here directly, from the edge (``imagegate.api.middleware``), by the very endpoint
functions the FastAPI application registers: those stay in the OpenAPI document and answer any
request this does not take (another method, a trailing slash, a mounted root path). Each
endpoint reads its own headers and body and return a finished ``Response``, so the answer is
the same either way, byte for byte; an error is answered by the application's own handlers, the
way Starlette's ``ExceptionMiddleware`` would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from imagegate.api.routes import images, jobs, openai

__all__ = ["HotRoutes"]

GENERATE = "/v2/images/generate"
GENERATIONS = "/v1/images/generations"
JOB = "/v2/jobs/{id}"
_JOB_PREFIX = "/v2/jobs/"

Handler = Callable[[Request, Exception], Awaitable[Response]]


class HotRoutes:
    """``await hot(scope, receive, send)`` answers the request and returns True when it is one of
    the hot routes; False, having done nothing, for any other request."""

    def __init__(self, app: FastAPI) -> None:
        routes = {
            getattr(route, "path", None): route
            for route in (*images.router.routes, *jobs.router.routes, *openai.router.routes)
        }
        # What FastAPI's routing leaves in the scope for these: the route the edge counts under.
        self._generate: BaseRoute = routes[GENERATE]
        self._generations: BaseRoute = routes[GENERATIONS]
        self._job: BaseRoute = routes[JOB]
        # Those of Starlette's ExceptionMiddleware: every class but Exception, which goes to the
        # error boundary. imagegate.api.errors installs only async handlers.
        self._handlers: dict[Any, Handler] = {
            kind: cast(Handler, handler)
            for kind, handler in app.exception_handlers.items()
            if isinstance(kind, type) and kind is not Exception
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> bool:
        path: str = scope["path"]
        method: str = scope["method"]
        if scope.get("root_path"):
            return False
        params: dict[str, str] = {}
        if method == "POST" and path == GENERATE:
            route = self._generate
        elif method == "POST" and path == GENERATIONS:
            route = self._generations
        elif method == "GET" and path.startswith(_JOB_PREFIX):
            job_id = path[len(_JOB_PREFIX) :]
            if not job_id or "/" in job_id:
                return False
            route, params = self._job, {"id": job_id}
        else:
            return False
        scope["route"] = route
        scope["path_params"] = params
        request = Request(scope, receive)
        try:
            if route is self._generate:
                response = await images.generate(request)
            elif route is self._generations:
                response = await openai.generations(request)
            else:
                response = await jobs.get_job(params["id"], request)
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is None:
                raise
            response = await handler(request, exc)
            exc.__traceback__ = None  # a reused exception would gather tracebacks
        await response(scope, receive, send)
        return True

    def _handler_for(self, exc: Exception) -> Handler | None:
        for kind in type(exc).__mro__:
            if kind in self._handlers:
                return self._handlers[kind]
        return None
