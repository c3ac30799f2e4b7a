"""``POST /v2/uploads``: store a client's image so it can be passed as an input-image URL.

The type is sniffed from the bytes (PNG, JPEG, WebP, GIF); whatever the client declared is
ignored. Files over ``upload_max_bytes`` are refused with 413, anything that is not one of those
images with 400. The returned URL is a signed gateway URL valid until the upload expires; when a
job names it as an input image, the gateway reads the file from storage instead of fetching it.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import uuid_utils

from imagegate.errors import PayloadTooLarge, ValidationFailed
from imagegate.net.images import sniff_image_type
from imagegate.presenters import iso
from imagegate.queue.ingest import INLINE_BYTES
from imagegate.services.accounts import Caller
from imagegate.storage.port import ObjectStore
from imagegate.store import retention
from imagegate.store.db import Database
from imagegate.types import Clock

__all__ = ["UploadService"]

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _sha256(data: bytes) -> str:
    """Hashed where an output of that size is (``queue.ingest.INLINE_BYTES``): on the event loop
    when small, else on a thread (25 MB, the largest upload, ~47 ms here)."""
    if len(data) <= INLINE_BYTES:
        return _sha256_hex(data)
    return await asyncio.to_thread(_sha256_hex, data)


class UploadService:
    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        store: ObjectStore,
        max_bytes: int,
        ttl_seconds: int,
    ) -> None:
        self._db = db
        self._clock = clock
        self._store = store
        self._max_bytes = max_bytes
        self._ttl = ttl_seconds

    async def create(self, caller: Caller, data: bytes) -> dict[str, Any]:
        if len(data) > self._max_bytes:
            raise PayloadTooLarge(f"File is larger than {self._max_bytes} bytes")
        if not data:
            raise ValidationFailed.field("file", "is empty")
        content_type = sniff_image_type(data)
        if content_type is None:
            raise ValidationFailed.field(
                "file", "is not a supported image (PNG, JPEG, WebP or GIF, by its content)"
            )
        upload_id = str(uuid_utils.uuid7())
        key = f"uploads/{upload_id}.{_EXTENSIONS[content_type]}"
        now = self._clock.now_ms()
        expires_at = now + self._ttl * 1000
        await self._store.put(key, data, content_type)
        sha256 = await _sha256(data)
        async with self._db.transaction() as conn:
            await retention.insert_upload(
                conn,
                {
                    "id": upload_id,
                    "account_id": caller.account_id,
                    "key": key,
                    "kind": "image",
                    "content_type": content_type,
                    "byte_size": len(data),
                    "sha256": sha256,
                    "created_at": now,
                    "expires_at": expires_at,
                },
            )
        return {
            "id": upload_id,
            "url": await self._store.url(key, self._ttl),
            "kind": "image",
            "contentType": content_type,
            "byteSize": len(data),
            "expiresAt": iso(expires_at),
        }
