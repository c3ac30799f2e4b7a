"""The ``ObjectStore`` port: put, read, delete and hand out expiring URLs for stored objects.

Keys are relative paths such as ``outputs/3f/<job id>-1.png``. ``storage.obstore_backend``
implements it over obstore for a local directory (the embedded default), any S3-compatible
service, and memory (unit tests); ``storage.factory`` picks one from the settings. All pass the
same contract suite.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["ObjectNotFound", "ObjectStore", "StoredObject"]


class ObjectNotFound(KeyError):
    """No object is stored under this key."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    content_type: str
    etag: str | None = None


@runtime_checkable
class ObjectStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Store ``data`` under ``key``, replacing what was there."""

    async def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        """Store the file at ``path`` under ``key``, streamed from disk (never read whole into
        memory; in multipart parts where the backend has them), replacing what was there."""

    async def get(self, key: str) -> bytes:
        """The whole object; raises ``ObjectNotFound``."""

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` (inclusive) to ``end`` (exclusive); raises ``ObjectNotFound``."""

    async def head(self, key: str) -> StoredObject:
        """Size, type and ETag; raises ``ObjectNotFound``."""

    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""

    async def url(self, key: str, expires_in: int) -> str:
        """A URL a client can GET for ``expires_in`` seconds (gateway-signed or presigned)."""
