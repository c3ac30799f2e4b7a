"""Input images: fetch a user's image URL through the guard and make sure it is an image.

Some vendors take image bytes (multipart or inline base64) rather than URLs, so the worker
downloads ``image_urls`` for them through ``make_input_fetcher``'s ``InputFetcher``:

- ``https://…`` (``http`` if the policy allows) goes through ``fetch_bytes``: SSRF checks on
  this attempt, the checked IP dialled, no redirects, ``max_bytes`` and ``timeout`` enforced;
- ``data:image/…;base64,…`` is decoded locally, with the same size cap applied before decoding.

The type is decided by the bytes (``sniff_image_type``), never by the ``Content-Type`` header or
the ``data:`` media type, so an HTML page or a script renamed ``.png`` is refused. Every refusal
is an ``InputImageError`` whose message the worker shows as the failed job's ``error``.
"""

from __future__ import annotations

import base64
import binascii
import ssl

from imagegate.errors import ImagegateError
from imagegate.net.guard import (
    OutboundError,
    OutboundPolicy,
    Resolver,
    default_tls,
    fetch_bytes,
    guarded_client,
)
from imagegate.types import FetchedInput, InputFetcher

__all__ = ["IMAGE_TYPES", "InputImageError", "make_input_fetcher", "sniff_image_type"]

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
"""What input images may be, in the order ``sniff_image_type`` names them."""

_WHITESPACE = str.maketrans("", "", " \t\r\n")


class InputImageError(ImagegateError):
    """An input image could not be used.

    ``retryable`` is true when trying again later may succeed (timeouts, 5xx, connection
    failures); a blocked URL, a redirect, an oversize body or a non-image never is.
    """

    code = "input_image_invalid"

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def sniff_image_type(data: bytes) -> str | None:
    """The image media type the magic bytes announce (PNG, JPEG, WebP, GIF), else ``None``."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def _describe(url: str) -> str:
    if url.startswith("data:"):
        return "the data: URI"
    return repr(url if len(url) <= 120 else url[:117] + "...")


def _decode_data_uri(url: str, max_bytes: int) -> bytes:
    header, sep, payload = url[len("data:") :].partition(",")
    if not sep:
        raise InputImageError("the data: URI has no ',' before its data")
    media, *params = header.split(";")
    if not media.strip().lower().startswith("image/") or "base64" not in params:
        raise InputImageError("a data: URI input image must be data:image/<type>;base64,<data>")
    payload = payload.translate(_WHITESPACE)
    if len(payload) // 4 * 3 > max_bytes + 2:  # checked before decoding anything
        raise InputImageError(f"the data: URI image is larger than {max_bytes} bytes")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InputImageError("the data: URI is not valid base64") from None
    if len(data) > max_bytes:
        raise InputImageError(f"the data: URI image is larger than {max_bytes} bytes")
    return data


def make_input_fetcher(
    policy: OutboundPolicy,
    max_bytes: int,
    *,
    timeout: float = 30.0,
    resolver: Resolver | None = None,
    verify: ssl.SSLContext | bool = True,
) -> InputFetcher:
    """An ``InputFetcher`` bound to the gateway's outbound policy and size cap.

    Each call uses a fresh guarded client (the guard keeps no connections alive anyway), so
    the fetcher needs no closing; the TLS context is built once. ``resolver`` and ``verify``
    are test seams (a fake DNS; a test CA).
    """
    ssl_context = default_tls() if verify is True else verify

    async def fetch(url: str) -> FetchedInput:
        if url[:5].lower() == "data:":
            data = _decode_data_uri(url, max_bytes)
        else:
            try:
                async with guarded_client(
                    policy, timeout, resolver=resolver, verify=ssl_context
                ) as client:
                    data, _declared = await fetch_bytes(
                        client, url, max_bytes=max_bytes, timeout=timeout
                    )
            except OutboundError as exc:
                retryable = bool(getattr(exc, "retryable", False))
                raise InputImageError(
                    f"input image {_describe(url)} {exc}", retryable=retryable
                ) from None
        kind = sniff_image_type(data)
        if kind is None:
            raise InputImageError(
                f"input image {_describe(url)} is not a PNG, JPEG, WebP or GIF image"
            )
        return FetchedInput(data=data, content_type=kind, url=url)

    return fetch
