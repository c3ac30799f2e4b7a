"""``create_app(runtime)``: the FastAPI application, with workers in-process when asked.

The generate route parses its body by hand (so the raw JSON can be fingerprinted for
Idempotency-Key and every error names its JSON path); its OpenAPI request body is injected here
from the catalog: a ``oneOf`` discriminated on ``model``, one named schema per model id.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from opentelemetry import _logs, metrics, trace
from pydantic import TypeAdapter
from starlette.types import ASGIApp, Receive, Scope, Send

from imagegate import __version__
from imagegate.api.errors import install_error_handlers
from imagegate.api.hotroutes import HotRoutes
from imagegate.api.middleware import EdgeMiddleware
from imagegate.api.routes import (
    account,
    account_admin,
    console,
    files,
    health,
    images,
    jobs,
    midjourney,
    models,
    openai,
    uploads,
    webhooks,
)
from imagegate.runtime import Background, Runtime

__all__ = ["create_app"]

DESCRIPTION = """\
A self-hosted image generation gateway, wire-compatible with the Apiframe v2 image API.
Submit with `POST /v2/images/generate` (202 + job id), then poll `GET /v2/jobs/{id}` or
receive webhooks. Authenticate with `X-API-Key` (or `Authorization: Bearer`).
"""


def create_app(runtime: Runtime, *, workers: int = 0, hot_routes: bool = True) -> FastAPI:
    """The app. With ``workers > 0`` the process also runs that many job slots (embedded mode).

    ``hot_routes=False`` serves the submit and the job read through FastAPI's routing like every
    other route (``imagegate.api.hotroutes``): tests compare the two.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Built before the server accepts a connection: on the first request for it, the
        # document (forty models' params) held the event loop ~90 ms.
        app.openapi()
        background = Background(runtime, workers) if workers > 0 else None
        try:
            yield
        finally:
            if background is not None:
                await background.stop()
            await runtime.aclose()

    telemetry = fastapi_telemetry()
    app = Gateway(
        title="imagegate",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # the console's /docs, with Swagger UI's files served from the package
        redoc_url=None,  # FastAPI's ReDoc page loads its script and fonts from CDNs
        openapi_url="/openapi.json",
        telemetry=telemetry,
        edge_first=telemetry == TELEMETRY_OFF,
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    for module in (
        images,
        midjourney,
        jobs,
        webhooks,
        uploads,
        account,
        account_admin,
        models,
        health,
        files,
        openai,
    ):
        app.include_router(module.router)
    console.install_console(app)
    app.add_middleware(
        EdgeMiddleware,
        counter=runtime.metrics.http_requests,
        limit=runtime.settings.max_body_bytes,
        overrides={
            "/v2/uploads": runtime.settings.upload_max_bytes + 1024 * 1024,
            midjourney.PATH: max(midjourney.BODY_LIMIT, runtime.settings.max_body_bytes),
            openai.EDITS_PATH: openai.edits_body_limit(runtime.settings.upload_max_bytes),
        },
        hot=HotRoutes(app) if hot_routes else None,
    )
    _install_openapi(app, runtime)
    return app


class Gateway(FastAPI):
    """FastAPI, handing each HTTP request straight to the edge (``EdgeMiddleware``) when
    nothing outside it has work to do.

    FastAPI and Starlette put four layers before the user's middleware: the native-telemetry
    check, ``ServerErrorMiddleware``, the exception telemetry and the app-wide body limit. With
    ``edge_first`` (FastAPI's telemetry off, no ``max_body_size``, no ``root_path``) none of them
    does anything for an HTTP request: the edge is the error boundary and answers every error
    itself, so nothing reaches the two error layers, and the edge enforces the body limits.
    Passing through them cost a submit or a read about as much CPU as the rest of its edge.
    Lifespan, websocket and any other scope take FastAPI's whole way, as does the first request
    (it builds the stack).
    """

    def __init__(self, *, edge_first: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._edge_first = edge_first and self.max_body_size is None
        self._edge: ASGIApp | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        layer: Any = stack
        while layer is not None and not isinstance(layer, EdgeMiddleware):
            layer = getattr(layer, "app", None)
        self._edge = layer if self._edge_first else None
        return stack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        edge = self._edge
        if edge is not None and scope["type"] == "http" and not self.root_path:
            scope["app"] = self
            await edge(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "code": {"type": "string"},
        "details": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
}
"""Every error body (``imagegate.api.errors``): a message, a machine code, for 400 the paths."""

OPENAI_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
"""Every error body of the OpenAI-compatible ``/v1`` routes: OpenAI's own shape."""

_ERRORS: dict[str, str] = {
    "400": "Validation failed; `details` names each offending parameter or JSON path.",
    "401": "Missing or invalid API key.",
    "403": "API key is inactive.",
    "404": "Not found.",
    "409": "Conflicts with the current state.",
    "413": "Request body too large.",
    "416": "The range lies outside the file; `Content-Range` gives its size.",
    "402": "Insufficient credits.",
    "429": "Too many requests or queued jobs; retry after `Retry-After` seconds.",
    "502": "The job failed upstream (refunded).",
    "504": "The job did not finish within the wait; the message names it.",
    "503": "Database unavailable; retry after `Retry-After` seconds.",
}


def _document_errors(path: str, method: str, operation: dict[str, Any]) -> None:
    """Document the error answers every route can give, in the shape they really have.

    FastAPI documents 422 for parameter errors, but they are answered 400 here; every route
    reads the database (503), every authenticated route may answer 401/403, and any id in the
    path may name nothing (404).
    """
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)
    codes = ["503"]
    if operation.get("parameters") or "requestBody" in operation:
        codes.append("400")
    openai = path.startswith("/v1/")
    if openai or (path.startswith("/v2/") and not path.startswith("/v2/models")):
        codes += ["401", "403"]
    if openai and path.startswith("/v1/images/"):
        codes += ["402", "409", "429", "502", "504"]
    if "{" in path:
        codes.append("404")
    if method == "post":
        codes.append("413")
    if path.endswith("/cancel"):
        codes.append("409")
    if path.startswith("/files/"):
        codes += ["403", "416"]
        responses.setdefault("206", {"description": "The requested byte range."})
        responses.setdefault("304", {"description": "Not modified (`If-None-Match`)."})
        file_errors = {"403": "Invalid or expired file URL.", "404": "File not found."}
        for code, description in file_errors.items():
            responses.setdefault(code, {"description": description})
    for code in codes:
        responses.setdefault(code, {"description": _ERRORS[code]})
    for code, response in responses.items():
        if code[0] in "45" and "content" not in response:
            shape = "OpenAIError" if openai else "Error"
            body = {"schema": {"$ref": f"#/components/schemas/{shape}"}}
            response["content"] = {"application/json": body}


def _install_openapi(app: FastAPI, runtime: Runtime) -> None:
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = base()
        union = TypeAdapter(runtime.catalog.request_union()).json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(union.pop("$defs", {}))
        components["GenerateImageRequest"] = union
        for path in schema["paths"].values():
            for operation in path.values():
                if operation.pop("x-imagegate-body", None):
                    operation["requestBody"] = {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/GenerateImageRequest"}
                            }
                        },
                    }
        components["Error"] = ERROR_SCHEMA
        components["OpenAIError"] = OPENAI_ERROR_SCHEMA
        for path, item in schema["paths"].items():
            for method, operation in item.items():
                _document_errors(path, method, operation)
        security = {"ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
        schema["components"]["securitySchemes"] = security
        schema["security"] = [{"ApiKeyAuth": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}

_DEFERRED = {"ProxyTracerProvider", "_ProxyMeterProvider", "ProxyLoggerProvider"}
"""OpenTelemetry's placeholders for a global provider nobody has set (as FastAPI tells them)."""


def fastapi_telemetry() -> TelemetryConfig:
    """FastAPI's own OpenTelemetry (a span and metrics per HTTP request), kept when something
    sets it up: a global provider in place before the app is built (``opentelemetry-instrument``
    sets them as the process starts) or ``FASTAPI_OTEL_AUTO_CONFIGURE``. Otherwise it is off,
    which spares every request FastAPI's look for a provider set since (~10 µs, three reads of
    the environment). imagegate's job traces (``IMAGEGATE_TRACING``) do not depend on it."""
    if os.getenv("FASTAPI_OTEL_AUTO_CONFIGURE", "").lower() == "true":
        return {}
    providers = (trace.get_tracer_provider(), metrics.get_meter_provider())
    if any(type(p).__name__ not in _DEFERRED for p in (*providers, _logs.get_logger_provider())):
        return {}
    return dict(TELEMETRY_OFF)  # type: ignore[return-value]
