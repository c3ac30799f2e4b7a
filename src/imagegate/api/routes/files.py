"""``GET /files/{key}``: signed, expiring downloads of stored outputs and uploads."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from imagegate.api.deps import RuntimeDep
from imagegate.storage.serving import file_response

__all__ = ["router"]

router = APIRouter(tags=["Files"])


@router.get("/files/{key:path}", summary="Download a stored file", include_in_schema=True)
async def download(key: str, request: Request, runtime: RuntimeDep) -> Response:
    """Serves a file whose URL the API handed out; 403 when the signature is wrong or expired."""
    return await file_response(
        runtime.store,
        runtime.signer,
        key,
        request.query_params,
        request.headers,
        runtime.clock.now_ms() // 1000,
    )
