"""The one place where errors become HTTP responses, in Apiframe's shapes.

``{"error": "...", "details": {"json.path": ["rule"]}}`` for 400, ``{"error": "Insufficient
credits", "creditsRequired": N, "creditsAvailable": M}`` for 402, ``{"error": "..."}`` for the rest;
every body also carries a stable machine ``code``. 429 and 503 carry ``Retry-After``. Nothing
unexpected ever shows a stack trace: it becomes a 500 with a request id to quote.
"""

from __future__ import annotations

from typing import Any, cast

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core import ErrorDetails
from starlette.exceptions import HTTPException as StarletteHTTPException

from imagegate.catalog.registry import describe_errors
from imagegate.errors import (
    ApiKeyInactive,
    AuthenticationFailed,
    Conflict,
    Forbidden,
    ImagegateError,
    InsufficientCredits,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    ValidationFailed,
)
from imagegate.store.db import is_unavailable

__all__ = ["error_response", "install_error_handlers", "status_for"]

log = structlog.get_logger("imagegate.api")

_STATUS: tuple[tuple[type[ImagegateError], int], ...] = (
    (ValidationFailed, 400),
    (ApiKeyInactive, 403),
    (AuthenticationFailed, 401),
    (Forbidden, 403),
    (InsufficientCredits, 402),
    (NotFound, 404),
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (RateLimited, 429),
    (ServiceUnavailable, 503),
)


def status_for(error: ImagegateError) -> int:
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


def error_response(error: ImagegateError) -> JSONResponse:
    status = status_for(error)
    body: dict[str, Any] = {"error": error.message, "code": error.code}
    headers: dict[str, str] = {}
    if isinstance(error, ValidationFailed) and error.details:
        body["details"] = error.details
    if isinstance(error, InsufficientCredits):
        body["creditsRequired"] = error.required
        body["creditsAvailable"] = error.available
    if isinstance(error, RateLimited | ServiceUnavailable):
        headers["Retry-After"] = str(error.retry_after)
    if status == 500:
        body = {"error": "Internal server error", "code": "internal_error"}
    return JSONResponse(body, status_code=status, headers=headers)


async def _domain(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ImagegateError)
    return error_response(exc)


async def _validation(_request: Request, exc: Exception) -> JSONResponse:
    """Query, path and header parameters that FastAPI validated (bodies are parsed by hand)."""
    assert isinstance(exc, RequestValidationError)
    errors = [{**error, "loc": _without_source(error["loc"])} for error in exc.errors()]
    return error_response(ValidationFailed(describe_errors(cast(list[ErrorDetails], errors))))


def _without_source(loc: Any) -> tuple[Any, ...]:
    parts = tuple(loc)
    return parts[1:] if parts[:1] in (("query",), ("path",), ("header",), ("body",)) else parts


async def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        {"error": str(exc.detail), "code": f"http_{exc.status_code}"},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    if is_unavailable(exc):
        return error_response(ServiceUnavailable())
    log.exception("api.unhandled", path=request.url.path)
    return JSONResponse(
        {"error": "Internal server error", "code": "internal_error"}, status_code=500
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ImagegateError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
