"""``POST /v2/uploads``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from imagegate.api.deps import CallerDep, RuntimeDep
from imagegate.errors import ValidationFailed

__all__ = ["router"]

router = APIRouter(tags=["Uploads"])


@router.post(
    "/v2/uploads",
    status_code=201,
    summary="Upload an image",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                }
            },
        }
    },
)
async def upload(request: Request, runtime: RuntimeDep, caller: CallerDep) -> JSONResponse:
    """Store an image (PNG, JPEG, WebP or GIF, up to 25 MB) for use as an input-image URL.
    The type is read from the file's bytes. Uploads expire after two hours by default."""
    limit = runtime.settings.upload_max_bytes
    try:
        form = await request.form(max_files=1, max_fields=10, max_part_size=limit + 1)
    except (ValueError, HTTPException) as exc:  # not multipart, or malformed
        reason = exc.detail if isinstance(exc, HTTPException) else str(exc)
        raise ValidationFailed.field("file", f"send multipart/form-data ({reason})") from None
    item: Any = form.get("file")
    if item is None or isinstance(item, str):
        raise ValidationFailed.field("file", "is required (a multipart file field)")
    data = await item.read()
    await form.close()
    return JSONResponse(await runtime.uploads.create(caller, data), status_code=201)
