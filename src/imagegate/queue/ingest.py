"""Fetch/store: every output goes into our own storage the moment a job finishes upstream.

Vendor URLs expire (BFL after 10 minutes, Replicate after an hour), so nothing upstream is ever
handed to a client. Each output is downloaded with a size cap, checked to really be an image
(magic bytes via Pillow, whatever the vendor's Content-Type says), hashed, measured, and stored
under ``outputs/<job id>/<n>.<ext>`` (``grid.<ext>`` for Midjourney's composite).

An output that can never be accepted — not an image, a format we do not serve, over the size
cap, or a decompression bomb (more pixels than Pillow's ``MAX_IMAGE_PIXELS``, which it refuses to
decode) — raises ``UpstreamRejected``, which fails the job at once: asking again would buy the
same answer. A store that cannot be written raises ``OutputStoreUnavailable``, which the runner
retries with the answer in hand.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
from PIL import Image

from imagegate.errors import UpstreamRejected, UpstreamRetryable
from imagegate.providers.port import Finished, OutputImage
from imagegate.storage.port import ObjectStore
from imagegate.store.outputs import OutputRecord

__all__ = ["ImageInfo", "OutputIngest", "OutputStoreUnavailable", "inspect_image"]

_FORMATS = {
    "PNG": ("image/png", "png"),
    "JPEG": ("image/jpeg", "jpg"),
    "WEBP": ("image/webp", "webp"),
    "GIF": ("image/gif", "gif"),
}


class OutputStoreUnavailable(Exception):
    """The object store refused or could not take an output; worth retrying."""


@dataclass(frozen=True)
class ImageInfo:
    content_type: str
    ext: str
    width: int
    height: int


def inspect_image(data: bytes) -> ImageInfo:
    """Identify an image by its bytes; raises ``UpstreamRejected`` for anything else."""
    try:
        with warnings.catch_warnings():
            # Between MAX_IMAGE_PIXELS and twice that Pillow only warns; refuse those too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                kind = _FORMATS.get(image.format or "")
                if kind is None:
                    raise UpstreamRejected(
                        f"Provider returned an unsupported image format ({image.format})"
                    )
                return ImageInfo(kind[0], kind[1], image.width, image.height)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UpstreamRejected(
            "Provider returned an image with too many pixels to decode safely"
        ) from exc
    except UpstreamRejected:
        raise
    except Exception as exc:
        # Pillow's plugins raise many types (OSError, ValueError, SyntaxError, struct.error)
        # for a file that is not quite an image; every one of them is a final answer.
        raise UpstreamRejected("Provider returned a file that is not an image") from exc


class OutputIngest:
    def __init__(
        self,
        store: ObjectStore,
        *,
        max_bytes: int,
        transport: Any = None,
        timeout: float = 60.0,
    ) -> None:
        self._store = store
        self._max_bytes = max_bytes
        self._client = httpx2.AsyncClient(
            transport=transport, timeout=timeout, follow_redirects=True
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def store(self, job_id: str, finished: Finished) -> list[OutputRecord]:
        """Store every output; the records the job keeps (key, type, size, dimensions, sha256)."""
        if not finished.images:
            raise UpstreamRejected("Provider returned no image")
        records = [
            await self._store_one(job_id, str(n), image)
            for n, image in enumerate(finished.images, start=1)
        ]
        if finished.grid is not None:
            grid = await self._store_one(job_id, "grid", finished.grid)
            records.append(dataclasses.replace(grid, grid=True))
        return records

    async def _store_one(self, job_id: str, name: str, image: OutputImage) -> OutputRecord:
        data = image.data if image.data is not None else await self._download(image)
        if len(data) > self._max_bytes:
            raise UpstreamRejected(f"Provider returned an image over {self._max_bytes} bytes")
        info = inspect_image(data)
        key = f"outputs/{job_id}/{name}.{info.ext}"
        try:
            await self._store.put(key, data, info.content_type)
        except Exception as exc:
            raise OutputStoreUnavailable(f"storing {key} failed: {exc!r}") from exc
        return OutputRecord(
            key=key,
            content_type=info.content_type,
            byte_size=len(data),
            width=info.width,
            height=info.height,
            sha256=hashlib.sha256(data).hexdigest(),
        )

    async def _download(self, image: OutputImage) -> bytes:
        assert image.url is not None
        try:
            async with self._client.stream("GET", image.url, headers=_headers(image.headers)) as r:
                if r.status_code in (404, 410, 403):
                    raise UpstreamRejected(
                        f"Provider's result URL is gone (HTTP {r.status_code}); it may have expired"
                    )
                if r.status_code >= 400:
                    raise UpstreamRetryable(f"Downloading the result failed (HTTP {r.status_code})")
                chunks: list[bytes] = []
                size = 0
                async for chunk in r.aiter_bytes():
                    size += len(chunk)
                    if size > self._max_bytes:
                        raise UpstreamRejected(
                            f"Provider returned an image over {self._max_bytes} bytes"
                        )
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx2.TransportError as exc:
            raise UpstreamRetryable(f"Downloading the result failed: {exc!r}") from exc


def _headers(headers: Mapping[str, str]) -> dict[str, str]:
    return dict(headers)
