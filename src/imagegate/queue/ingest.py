"""Fetch/store: every output goes into our own storage the moment a job finishes upstream.

Vendor URLs expire (BFL after 10 minutes, Replicate after an hour), so nothing upstream is ever
handed to a client. Each output is checked to really be an image (magic bytes via Pillow,
whatever the vendor's Content-Type says), hashed, measured, and stored under ``output_key``:
``outputs/<the job id's last two characters>/<job id>-<n>.<ext>`` (``grid`` for Midjourney's
composite instead of a number).

A download is streamed, never held whole: a ``Content-Length`` over ``max_bytes`` is refused
before the body is read, and the bytes read are counted so a body without one stops at the cap.
What is read is hashed as it arrives and spooled — in memory up to ``SPOOL_BYTES``, then to a
temporary file that the store uploads from (S3 in multipart parts); temporary files go to the
system's temporary directory (``TMPDIR``), one per download in flight, removed once stored (or
refused). Pillow only reads the image's header (format and dimensions, no decoding). Hashing,
spooling and Pillow run in a worker thread, except for an image of at most ``INLINE_BYTES``,
which costs the event loop about a tenth of a millisecond, less than the hop to a thread.
Inline outputs (vendors that answer with base64) are hashed and inspected the same way.

An output that can never be accepted — not an image, a format we do not serve, over the size
cap, or a decompression bomb (more pixels than Pillow's ``MAX_IMAGE_PIXELS``, which it refuses to
open) — raises ``UpstreamRejected``, which fails the job at once: asking again would buy the
same answer. A store that cannot be written raises ``OutputStoreUnavailable``, which the runner
retries with the answer in hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import dataclasses
import hashlib
import io
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx2
from PIL import Image, UnidentifiedImageError

from imagegate.errors import UpstreamRejected, UpstreamRetryable
from imagegate.net.guard import default_tls
from imagegate.net.transport import AiohttpTransport
from imagegate.providers.port import Finished, OutputImage
from imagegate.storage.port import ObjectStore
from imagegate.store.outputs import OutputRecord

__all__ = [
    "SPOOL_BYTES",
    "ImageInfo",
    "OutputIngest",
    "OutputStoreUnavailable",
    "inspect_image",
    "output_key",
]

SPOOL_BYTES = 1 << 20
"""A download larger than this goes to a temporary file instead of memory."""

_HANDOFF_BYTES = 1 << 20
"""Bytes read from the network are handed to the spooling thread in batches of about this."""

INLINE_BYTES = 256 * 1024
"""An output up to this size is hashed and its header read on the event loop (~0.1 ms for
256 KB): a hop to a worker thread costs more, and a thread per small image contends with the
loop for the GIL when thousands of jobs finish at once."""

_FORMATS = {
    "PNG": ("image/png", "png"),
    "JPEG": ("image/jpeg", "jpg"),
    "WEBP": ("image/webp", "webp"),
    "GIF": ("image/gif", "gif"),
}
_FORMAT_NAMES = tuple(_FORMATS)


def output_key(job_id: str, name: str, ext: str) -> str:
    """Where a job's output ``name`` (``1``, ``2``, …, ``grid``) is stored.

    Outputs share 256 directories, named by the job id's last two characters (random hex
    digits in a UUIDv7), so a put to a local directory creates a file and no directory: each is
    an inode to allocate, whose cost on ext4 grows with the inodes freed nearby in the last 30 s
    (``bench/notes.md``, litellm), and a directory per job stayed behind, empty, once retention
    deleted its files. Keys stored under the earlier layout, ``outputs/<job id>/<n>.<ext>``, stay
    valid: a job keeps each output's key, and files are served by key.
    """
    return f"outputs/{job_id[-2:]}/{job_id}-{name}.{ext}"


class OutputStoreUnavailable(Exception):
    """The object store refused or could not take an output; worth retrying."""


@dataclass(frozen=True)
class ImageInfo:
    content_type: str
    ext: str
    width: int
    height: int


def inspect_image(source: bytes | IO[bytes]) -> ImageInfo:
    """Identify an image by its header; raises ``UpstreamRejected`` for anything else.

    Only the header is read (``Image.open`` without ``load``): the pixels are never decoded.
    Pillow is asked for the formats we serve first: left to itself it asks its ~40 plugins in
    turn whether each knows the file (PNG is the 18th, WebP later still), most of what a header
    cost the event loop (a 64 KB PNG 32 → 19 µs, a WebP 64 → 21 µs). A file none of them opens
    is opened again by every plugin, so that another format is still named in the refusal.
    Blocking: call it in a worker thread for anything but a small image.
    """
    try:
        with warnings.catch_warnings():
            # Between MAX_IMAGE_PIXELS and twice that Pillow only warns; refuse those too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            file = io.BytesIO(source) if isinstance(source, bytes) else source
            try:
                opened = Image.open(file, formats=_FORMAT_NAMES)
            except UnidentifiedImageError:
                file.seek(0)
                opened = Image.open(file)
            with opened as image:
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


class _Spool:
    """A download on its way to storage: hashed as it is written, kept in memory up to
    ``SPOOL_BYTES``, then in a temporary file. Every method blocks: call them in a thread, but
    for an image of at most ``INLINE_BYTES``, which stays in memory."""

    def __init__(self) -> None:
        self.size = 0
        self.sha256 = hashlib.sha256()
        self._memory: list[bytes] = []
        self._file: IO[bytes] | None = None
        self.path: Path | None = None

    def write(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.sha256.update(chunk)
            self.size += len(chunk)
        if self._file is None and self.size > SPOOL_BYTES:
            fd, name = tempfile.mkstemp(prefix="imagegate-output-")
            self.path = Path(name)
            self._file = os.fdopen(fd, "wb")
            self._file.writelines(self._memory)
            self._memory = []
        if self._file is not None:
            self._file.writelines(chunks)
        else:
            self._memory.extend(chunks)

    def finish(self) -> tuple[bytes | None, ImageInfo]:
        """Close the spool and read its image header: the bytes too when they stayed in memory."""
        if self._file is None:
            data = b"".join(self._memory)
            self._memory = []
            return data, inspect_image(data)
        self._file.close()
        assert self.path is not None
        with self.path.open("rb") as file:
            return None, inspect_image(file)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _libc_malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    return None


_MALLOC_TRIM = _libc_malloc_trim()


def _release_freed_memory() -> None:
    """Hand the heap pages a large download freed back to the OS (blocking, a few ms).

    The parts of a large output are allocated in worker threads (spooling, obstore's upload),
    each with its own glibc arena; freed, they stay in the process's RSS until trimmed.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _examine(data: bytes) -> tuple[str, ImageInfo]:
    """An inline output's SHA-256 and image header (blocking)."""
    return hashlib.sha256(data).hexdigest(), inspect_image(data)


DOWNLOADS = 100
"""Result downloads at once from any one host (a vendor's CDN); more wait for a connection."""


class OutputIngest:
    def __init__(
        self,
        store: ObjectStore,
        *,
        max_bytes: int,
        transport: Any = None,
        timeout: float = 60.0,
    ) -> None:
        """Pillow's format plugins are loaded here, at start-up: ``Image.open`` imports them on
        its first call, 20-45 ms of CPU (every plugin for a WEBP) on the event loop, in the first
        step of each process that stores an image (``bench/notes.md`` ``## slow-callbacks``)."""
        Image.init()
        self._store = store
        self._max_bytes = max_bytes
        self._client = httpx2.AsyncClient(
            transport=transport or AiohttpTransport(connections=DOWNLOADS, tls=default_tls()),
            timeout=timeout,
            verify=default_tls(),
            follow_redirects=True,
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
        if image.data is None:
            return await self._store_download(job_id, name, image)
        data = image.data
        self._check_size(len(data))
        if len(data) <= INLINE_BYTES:
            sha256, info = _examine(data)
        else:
            sha256, info = await asyncio.to_thread(_examine, data)
        key = output_key(job_id, name, info.ext)
        await self._put(key, info, data)
        return _record(key, info, len(data), sha256)

    async def _store_download(self, job_id: str, name: str, image: OutputImage) -> OutputRecord:
        spool = _Spool()
        try:
            await self._download(image, spool)
            if spool.size <= INLINE_BYTES:
                data, info = spool.finish()
            else:
                data, info = await asyncio.to_thread(spool.finish)
            key = output_key(job_id, name, info.ext)
            await self._put(key, info, data if data is not None else spool.path)
            return _record(key, info, spool.size, spool.sha256.hexdigest())
        finally:
            if spool.path is not None:  # a spool in memory has nothing to remove
                await asyncio.to_thread(spool.discard)
            if spool.size > SPOOL_BYTES:
                await asyncio.to_thread(_release_freed_memory)

    async def _put(self, key: str, info: ImageInfo, content: bytes | Path | None) -> None:
        try:
            if isinstance(content, bytes):
                await self._store.put(key, content, info.content_type)
            else:
                assert content is not None
                await self._store.put_file(key, content, info.content_type)
        except Exception as exc:
            raise OutputStoreUnavailable(f"storing {key} failed: {exc!r}") from exc

    def _check_size(self, size: int) -> None:
        if size > self._max_bytes:
            raise UpstreamRejected(f"Provider returned an image over {self._max_bytes} bytes")

    async def _download(self, image: OutputImage, spool: _Spool) -> None:
        """Stream ``image.url`` into ``spool``, refusing a body over the cap before it is read
        (``Content-Length``) or as soon as the bytes read pass it."""
        assert image.url is not None
        try:
            async with self._client.stream("GET", image.url, headers=_headers(image.headers)) as r:
                if r.status_code in (404, 410, 403):
                    raise UpstreamRejected(
                        f"Provider's result URL is gone (HTTP {r.status_code}); it may have expired"
                    )
                if r.status_code >= 400:
                    raise UpstreamRetryable(f"Downloading the result failed (HTTP {r.status_code})")
                declared = r.headers.get("content-length", "")
                if declared.isascii() and declared.isdigit() and int(declared) > self._max_bytes:
                    raise UpstreamRejected(
                        f"Provider returned an image over {self._max_bytes} bytes "
                        f"(Content-Length {declared})"
                    )
                batch: list[bytes] = []
                batched = read = 0
                async for chunk in r.aiter_bytes():
                    read += len(chunk)
                    self._check_size(read)
                    batch.append(chunk)
                    batched += len(chunk)
                    if batched >= _HANDOFF_BYTES:
                        await self._spool(spool, batch)
                        batch, batched = [], 0
                if batch:
                    await self._spool(spool, batch)
        except httpx2.TransportError as exc:
            raise UpstreamRetryable(f"Downloading the result failed: {exc!r}") from exc

    @staticmethod
    async def _spool(spool: _Spool, batch: list[bytes]) -> None:
        try:
            if spool.size + sum(map(len, batch)) <= INLINE_BYTES:
                spool.write(batch)  # hashing a small image in memory: no thread needed
            else:
                await asyncio.to_thread(spool.write, batch)
        except OSError as exc:  # the temporary file could not be written (disk full)
            raise OutputStoreUnavailable(f"spooling a download failed: {exc!r}") from exc


def _record(key: str, info: ImageInfo, size: int, sha256: str) -> OutputRecord:
    return OutputRecord(
        key=key,
        content_type=info.content_type,
        byte_size=size,
        width=info.width,
        height=info.height,
        sha256=sha256,
    )


def _headers(headers: Mapping[str, str]) -> dict[str, str]:
    return dict(headers)
