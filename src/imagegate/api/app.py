"""``create_app(runtime)``: the FastAPI application, with workers in-process when asked.

The generate route parses its body by hand (so the raw JSON can be fingerprinted for
Idempotency-Key and every error names its JSON path); its OpenAPI request body is injected here
from the catalog: a ``oneOf`` discriminated on ``model``, one named schema per model id.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from pydantic import TypeAdapter

from imagegate import __version__
from imagegate.api.errors import install_error_handlers
from imagegate.api.middleware import BodyLimitMiddleware, RequestIdMiddleware
from imagegate.api.ratelimit import RateLimitHeadersMiddleware
from imagegate.api.routes import (
    account,
    files,
    health,
    images,
    jobs,
    midjourney,
    models,
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


def create_app(runtime: Runtime, *, workers: int = 0) -> FastAPI:
    """The app. With ``workers > 0`` the process also runs that many job slots (embedded mode)."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        background = Background(runtime, workers) if workers > 0 else None
        try:
            yield
        finally:
            if background is not None:
                await background.stop()
            await runtime.aclose()

    app = FastAPI(
        title="imagegate",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    for module in (images, midjourney, jobs, webhooks, uploads, account, models, health, files):
        app.include_router(module.router)
    app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        limit=runtime.settings.max_body_bytes,
        overrides={
            "/v2/uploads": runtime.settings.upload_max_bytes + 1024 * 1024,
            midjourney.PATH: max(midjourney.BODY_LIMIT, runtime.settings.max_body_bytes),
        },
    )
    app.add_middleware(RequestIdMiddleware)
    _install_openapi(app, runtime)
    return app


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
        security = {"ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
        schema["components"]["securitySchemes"] = security
        schema["security"] = [{"ApiKeyAuth": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
