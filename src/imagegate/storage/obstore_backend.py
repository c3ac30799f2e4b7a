"""The ``ObjectStore`` port over obstore: one class for the local directory, memory and S3.

obstore's local filesystem keeps no per-object attributes, so there the content type comes from
the key's extension (keys are always written with the right one); S3 and memory keep the
``Content-Type`` given at ``put``.

``put_file`` hands obstore the file's path: obstore reads it from Rust, part by part, and uploads
a file larger than ``PART_BYTES`` to S3 as a multipart upload with at most ``PARTS_IN_FLIGHT``
parts in memory at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import obstore

from imagegate.storage.port import ObjectNotFound, StoredObject
from imagegate.storage.signing import UrlSigner

__all__ = ["PARTS_IN_FLIGHT", "PART_BYTES", "SETTLE_SECONDS", "ObstoreObjectStore", "settle"]

PART_BYTES = 5 * 1024 * 1024
"""Size of a multipart upload's part (S3's smallest allowed, but for the last)."""

PARTS_IN_FLIGHT = 2
"""Parts of one upload sent at once; each is held in memory while it is sent."""

SETTLE_SECONDS = 0.05
"""How long ``settle`` leaves the GIL to obstore's threads."""


async def settle() -> None:
    """Let obstore's threads finish handing back the calls just awaited; for a command that
    exits after its last object store call.

    obstore answers an awaited call from a thread of its own (tokio's): it hands the result to
    the loop, then takes the GIL once more on its way out. A process that exits at once could
    finalise Python in between, and Python 3.11 ends a thread asking for the GIL then with
    ``pthread_exit``, which aborts the process from inside Rust (SIGABRT after the command's last
    line: 5-22 runs of ``config check --connect`` in 100 here). Asleep on the loop, the process
    leaves the GIL free for that thread.
    """
    await asyncio.sleep(SETTLE_SECONDS)


def _type_from_key(key: str) -> str:
    guessed, _ = mimetypes.guess_type(key)
    return guessed or "application/octet-stream"


class ObstoreObjectStore:
    def __init__(
        self,
        store: Any,
        signer: UrlSigner,
        *,
        keeps_attributes: bool,
        presign: bool = False,
    ) -> None:
        self._store = store
        self._signer = signer
        self._keeps_attributes = keeps_attributes
        self._presign = presign

    async def keys(self) -> AsyncIterator[str]:
        """Every stored key, in no particular order (``imagegate import`` copies them all)."""
        async for batch in obstore.list(self._store, chunk_size=500):
            for meta in batch:
                yield str(meta["path"])

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        attributes = {"Content-Type": content_type} if self._keeps_attributes else None
        result = await obstore.put_async(self._store, key, data, attributes=attributes)
        return StoredObject(key, len(data), content_type, result.get("e_tag"))

    async def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        attributes = {"Content-Type": content_type} if self._keeps_attributes else None
        size = path.stat().st_size
        result = await obstore.put_async(
            self._store,
            key,
            path,
            attributes=attributes,
            chunk_size=PART_BYTES,
            max_concurrency=PARTS_IN_FLIGHT,
        )
        return StoredObject(key, size, content_type, result.get("e_tag"))

    async def get(self, key: str) -> bytes:
        try:
            result = await obstore.get_async(self._store, key)
            return bytes(await result.bytes_async())
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        try:
            return bytes(await obstore.get_range_async(self._store, key, start=start, end=end))
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    async def head(self, key: str) -> StoredObject:
        try:
            if self._keeps_attributes:
                result = await obstore.get_async(self._store, key, options={"head": True})
                meta, attributes = result.meta, result.attributes
                content_type = str(attributes.get("Content-Type") or _type_from_key(key))
            else:
                meta = await obstore.head_async(self._store, key)
                content_type = _type_from_key(key)
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        return StoredObject(key, meta["size"], content_type, meta.get("e_tag"))

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await obstore.delete_async(self._store, key)

    async def url(self, key: str, expires_in: int) -> str:
        if self._presign:
            return await obstore.sign_async(self._store, "GET", key, timedelta(seconds=expires_in))
        return self._signer.sign(key, expires_in)
