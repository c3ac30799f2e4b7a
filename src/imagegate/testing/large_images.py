"""Large upstream results served by URL: what the streamed ingest path is tested and measured on.

``large_png(size)`` is a valid PNG of about ``size`` bytes: black pixels stored without
compression, so the file is as large as its pixels and costs no time to build beyond the copy.
``bomb_png(width, height)`` is a tiny PNG whose header declares ``width`` x ``height`` pixels.

``create_app()`` serves them the way a vendor's result host does:

- ``GET /png/{size}.png`` — a PNG of ``size`` bytes with its ``Content-Length``;
- ``GET /png/{size}.png?chunked=1`` — the same without ``Content-Length`` (chunked), so only
  counting the bytes read can stop a download that is too large;
- ``GET /bomb/{width}x{height}.png`` — ``bomb_png``.

Bodies go out in 1 MiB slices; ``app.state.sent`` maps each path to the bytes handed to the
server so far, so a test sees a refused download stop early.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Iterator

from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

__all__ = ["SLICE_BYTES", "bomb_png", "create_app", "large_png"]

SLICE_BYTES = 1 << 20
_WIDTH = 2000
_ROW = 1 + 3 * _WIDTH  # filter byte + RGB


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, pixels: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", pixels)
        + _chunk(b"IEND", b"")
    )


@functools.lru_cache(maxsize=4)
def large_png(size: int) -> bytes:
    """A valid 2000-pixel-wide RGB PNG of at least ``size`` bytes (stored, not compressed)."""
    height = max(1, -(-size // _ROW))
    return _png(_WIDTH, height, zlib.compress(bytes(_ROW * height), level=0))


def bomb_png(width: int, height: int) -> bytes:
    """A PNG of a few dozen bytes whose header declares ``width`` x ``height`` pixels."""
    return _png(width, height, zlib.compress(b"\x00" * 64))


def create_app() -> FastAPI:
    app = FastAPI(title="large upstream images")
    sent: dict[str, int] = {}
    app.state.sent = sent

    def stream(path: str, data: bytes, *, chunked: bool) -> StreamingResponse:
        def slices() -> Iterator[bytes]:
            view = memoryview(data)
            for start in range(0, len(data), SLICE_BYTES):
                piece = bytes(view[start : start + SLICE_BYTES])
                sent[path] = sent.get(path, 0) + len(piece)
                yield piece

        headers = {} if chunked else {"Content-Length": str(len(data))}
        return StreamingResponse(slices(), media_type="image/png", headers=headers)

    @app.get("/png/{size}.png")
    async def png(size: int, request: Request, chunked: bool = False) -> Response:
        return stream(request.url.path, large_png(size), chunked=chunked)

    @app.get("/bomb/{width}x{height}.png")
    async def bomb(width: int, height: int, request: Request) -> Response:
        return stream(request.url.path, bomb_png(width, height), chunked=False)

    return app
