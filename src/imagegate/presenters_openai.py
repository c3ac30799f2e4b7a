"""The OpenAI images wire format: every ``/v1`` body, built by pure functions from records.

``/v1/images/generations`` and ``/v1/images/edits`` answer ``{"created", "data": [{"url" |
"b64_json"}]}``; ``/v1/models`` answers ``{"object": "list", "data": [{"id", "object": "model",
"created", "owned_by"}]}``; every error is ``{"error": {"message", "type", "param", "code"}}``,
the shape OpenAI's own clients parse. Nothing here does I/O: the caller passes signed URLs or
the stored bytes in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pybase64

from imagegate.store.jobs import JobRow
from imagegate.store.outputs import OutputRecord

__all__ = ["error_body", "error_type", "image_records", "images_body", "models_body"]

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
    504: "timeout_error",
}


def error_type(status: int) -> str:
    """OpenAI's ``error.type`` for an HTTP status (``server_error`` for any other 5xx)."""
    return _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def error_body(status: int, message: str, *, param: str | None, code: str | None) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}


def image_records(job: JobRow) -> list[OutputRecord]:
    """The images a finished job answers with, in order (a Midjourney grid is left out)."""
    return [record for record in job.outputs or () if not record.grid]


def images_body(
    job: JobRow,
    *,
    urls: Mapping[str, str] | None = None,
    contents: Mapping[str, bytes] | None = None,
) -> dict[str, Any]:
    """``{"created", "data"}`` for a completed job: each image as ``url`` (from ``urls``, keyed
    by storage key) or as ``b64_json`` (from ``contents``, the stored bytes; encoded by
    ``pybase64``, ~2 µs for a 64 KB image where the standard library's encoder takes ~70 µs)."""
    data: list[dict[str, Any]] = []
    for record in image_records(job):
        if contents is not None:
            data.append({"b64_json": pybase64.b64encode_as_string(contents[record.key])})
        else:
            assert urls is not None
            data.append({"url": urls[record.key]})
    return {"created": job.created_at // 1000, "data": data}


def models_body(models: Iterable[tuple[str, str]], created: int) -> dict[str, Any]:
    """``GET /v1/models`` from ``(model id, owner)`` pairs."""
    data: Sequence[dict[str, Any]] = [
        {"id": model_id, "object": "model", "created": created, "owned_by": owner}
        for model_id, owner in models
    ]
    return {"object": "list", "data": list(data)}
