"""Serve a stored object to a client holding a signed URL.

403 when the signature is wrong or expired (the same answer for both, so a URL reveals nothing);
400 when ``expires`` is not a Unix time at all (no URL the gateway signs looks like that);
404 when the object is gone (expired by retention); ``ETag`` and ``If-None-Match`` → 304;
``Range: bytes=…`` → 206 or 416. Outputs never change once written, so they are cacheable
until the URL expires.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from fastapi import Response
from fastapi.responses import JSONResponse

from imagegate.storage.port import ObjectNotFound, ObjectStore
from imagegate.storage.signing import UrlSigner, parse_expires

__all__ = ["file_response"]

_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
_MAX_DIGITS = 18
"""A position of more digits is past the end of any object (and ``int`` has a digit limit)."""


def _error(status: int, message: str, code: str | None = None) -> Response:
    body = {"error": message} if code is None else {"error": message, "code": code}
    return JSONResponse(body, status_code=status)


def _position(digits: str, size: int) -> int:
    """A byte position; positions too long to convert are past the end anyway."""
    return size + 1 if len(digits) > _MAX_DIGITS else int(digits)


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """``(start, end)`` of one ``bytes=`` range, ``end`` exclusive; ``None`` when unsatisfiable."""
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        length = _position(last, size)
        if length == 0:
            return None
        return max(size - length, 0), size
    start = _position(first, size)
    end = min(_position(last, size) + 1, size) if last else size
    if start >= size or start >= end:
        return None
    return start, end


async def file_response(
    store: ObjectStore,
    signer: UrlSigner,
    key: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    now_s: int,
) -> Response:
    expires = query.get("expires")
    if expires is not None and parse_expires(expires) is None:
        return _error(
            400, "Malformed file URL: expires must be a Unix time in seconds", "invalid_file_url"
        )
    if not signer.verify(key, expires, query.get("signature"), now_s):
        return _error(403, "Invalid or expired file URL")
    try:
        meta = await store.head(key)
    except ObjectNotFound:
        return _error(404, "File not found")
    max_age = max(int(expires or 0) - now_s, 0)
    common = {
        "Cache-Control": f"private, max-age={max_age}, immutable",
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
    }
    if meta.etag:
        common["ETag"] = meta.etag
        if meta.etag in {tag.strip() for tag in headers.get("if-none-match", "").split(",")}:
            return Response(status_code=304, headers=common)
    range_header = headers.get("range")
    # A multi-range request gets the whole file, which RFC 9110 allows.
    if range_header and "," not in range_header:
        span = _byte_range(range_header, meta.size)
        if span is None:
            return Response(
                status_code=416, headers={**common, "Content-Range": f"bytes */{meta.size}"}
            )
        start, end = span
        try:
            body = await store.get_range(key, start, end)
        except ObjectNotFound:
            return _error(404, "File not found")
        return Response(
            body,
            status_code=206,
            media_type=meta.content_type,
            headers={**common, "Content-Range": f"bytes {start}-{end - 1}/{meta.size}"},
        )
    try:
        body = await store.get(key)
    except ObjectNotFound:
        return _error(404, "File not found")
    return Response(body, media_type=meta.content_type, headers=common)
