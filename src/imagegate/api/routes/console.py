"""The web console at ``/``, its static files, the local API docs page and the price endpoint.

Everything a page loads comes from this package: the console's ES modules and stylesheet
(``imagegate/web/static``) and Swagger UI's assets (the ``swagger-ui-bundle`` package), because a
gateway may run where there is no internet. The pages hold no key or secret: the console asks
for an API key after loading and keeps it in the browser's session storage.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

import swagger_ui_bundle
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError

from imagegate.api.bodies import decode_json
from imagegate.api.deps import RuntimeDep
from imagegate.catalog.registry import describe_errors
from imagegate.errors import NotFound, ValidationFailed

__all__ = ["STATIC_DIR", "install_console", "router"]

STATIC_DIR = Path(str(files("imagegate.web") / "static"))
SWAGGER_DIR = Path(swagger_ui_bundle.swagger_ui_path)

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        # Result URLs may be presigned URLs of an S3-compatible service on another host.
        "img-src 'self' data: blob: http: https:",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ]
)
"""The console runs only its own scripts: a key typed into it cannot leave for another host."""

router = APIRouter()


@router.get("/", include_in_schema=False)
async def console_page() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html",
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/docs", include_in_schema=False)
async def api_docs(request: Request) -> HTMLResponse:
    """Swagger UI, with its script, stylesheet and icon served from this package."""
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}/openapi.json",
        title="imagegate API",
        swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
        swagger_favicon_url=f"{root}/console/favicon.svg",
    )


@router.post(
    "/v2/models/{model_id}/price",
    tags=["Models"],
    summary="Price a params object",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def price(model_id: str, request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """The credits a live key would be charged for this model with the params object in the
    body (the same object as the model's `…Params` field of a generate request; `{}` for the
    defaults). Test keys are never charged. 400 names each offending param."""
    spec = runtime.catalog.get(model_id)
    if spec is None:
        raise NotFound(f"Model {model_id!r} not found")
    params = await decode_json(request)
    envelope = {"model": model_id, "prompt": "price", spec.params_key: params}
    try:
        parsed = runtime.catalog.request_class(model_id).model_validate(envelope)
    except ValidationError as exc:
        raise ValidationFailed(describe_errors(exc.errors())) from None
    values = getattr(parsed, spec.params_key) or spec.params()
    return {
        "model": model_id,
        "credits": runtime.catalog.price(spec, values),
        "outputs": spec.outputs(values),
    }


def install_console(app: FastAPI) -> None:
    """Add the console page and its static files, the local docs page and the price route.

    ``create_app`` passes ``docs_url=None``: this ``/docs`` replaces FastAPI's, which loads
    Swagger UI from a CDN."""
    app.include_router(router)
    app.mount("/console", StaticFiles(directory=STATIC_DIR), name="console")
    app.mount("/docs/assets", StaticFiles(directory=SWAGGER_DIR), name="docs-assets")
