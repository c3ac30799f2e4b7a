"""Input images that are our own files are read from storage, not fetched over the network.

A client may pass the URL of one of its uploads (``POST /v2/uploads``) or of an earlier output
as an input image. Those are gateway URLs (``{public_base_url}/files/{key}?expires=…``); when an
adapter needs the bytes, the gateway reads the object directly — no request to itself, and no
outbound-guard refusal of its own loopback address. The URL's signature must still be valid, so
a client cannot read another account's file by guessing its key. Other URLs (including presigned
S3 URLs) go to the network fetcher and its guard.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from imagegate.net.images import InputImageError, sniff_image_type
from imagegate.storage.port import ObjectNotFound, ObjectStore
from imagegate.storage.signing import UrlSigner
from imagegate.types import Clock, FetchedInput, InputFetcher

__all__ = ["reading_own_files"]


def reading_own_files(
    fetch: InputFetcher, store: ObjectStore, signer: UrlSigner, clock: Clock
) -> InputFetcher:
    """Wrap ``fetch`` so that gateway file URLs are served from ``store``."""
    prefix = signer.files_prefix

    async def fetch_input(url: str) -> FetchedInput:
        if not url.startswith(prefix):
            return await fetch(url)
        parts = urlsplit(url)
        key = unquote(parts.path[len(urlsplit(prefix).path) :])
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        now_s = clock.now_ms() // 1000
        if not signer.verify(key, query.get("expires"), query.get("signature"), now_s):
            raise InputImageError("input image URL is invalid or has expired")
        try:
            data = await store.get(key)
        except ObjectNotFound:
            raise InputImageError("input image file no longer exists") from None
        content_type = sniff_image_type(data)
        if content_type is None:
            raise InputImageError("input image file is not an image")
        return FetchedInput(data, content_type, url)

    return fetch_input
