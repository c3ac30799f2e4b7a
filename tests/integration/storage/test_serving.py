"""``storage.serving.file_response`` behind a one-route app, on every backend.

The route is the gateway's own shape (``GET /files/{key}``), and every URL comes from the signer,
so these tests check what a client holding a handed-out URL sees.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest
from fastapi import FastAPI, Request, Response

from imagegate.storage.obstore_backend import ObstoreObjectStore
from imagegate.storage.serving import file_response
from imagegate.storage.signing import UrlSigner
from imagegate.testing.clock import FakeClock
from tests.integration.storage.conftest import GATEWAY_BASE

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
KEY = "outputs/job_01/1.png"


@pytest.fixture
async def http(
    object_store: ObstoreObjectStore, signer: UrlSigner, clock: FakeClock
) -> AsyncIterator[httpx2.AsyncClient]:
    app = FastAPI()

    @app.get("/files/{key:path}")
    async def download(key: str, request: Request) -> Response:
        return await file_response(
            object_store,
            signer,
            key,
            request.query_params,
            request.headers,
            clock.now_ms() // 1000,
        )

    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url=GATEWAY_BASE) as client:
        yield client


@pytest.fixture
async def url(object_store: ObstoreObjectStore, signer: UrlSigner) -> str:
    await object_store.put(KEY, PNG, "image/png")
    return signer.sign(KEY, 600)


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    return parts._replace(query=urlencode({**query, **changes})).geturl()


async def test_valid_url_serves_bytes_type_etag_and_cache_headers(
    http: httpx2.AsyncClient, url: str, object_store: ObstoreObjectStore
) -> None:
    response = await http.get(url)

    assert response.status_code == 200, response.text
    assert response.content == PNG
    assert response.headers["content-type"] == "image/png"
    assert response.headers["etag"] == (await object_store.head(KEY)).etag
    assert response.headers["cache-control"] == "private, max-age=600, immutable"
    assert response.headers["accept-ranges"] == "bytes"


async def test_tampered_signature_is_403(http: httpx2.AsyncClient, url: str) -> None:
    signature = parse_qs(urlsplit(url).query)["signature"][0]
    forged = ("0" if signature[0] != "0" else "1") + signature[1:]

    response = await http.get(with_query(url, signature=forged))

    assert response.status_code == 403
    assert response.json() == {"error": "Invalid or expired file URL"}


async def test_signature_for_another_key_is_403(
    http: httpx2.AsyncClient, url: str, object_store: ObstoreObjectStore
) -> None:
    await object_store.put("outputs/job_01/2.png", b"other image", "image/png")

    response = await http.get(url.replace("/1.png?", "/2.png?"))

    assert response.status_code == 403


async def test_extended_expiry_is_403(http: httpx2.AsyncClient, url: str) -> None:
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])

    response = await http.get(with_query(url, expires=str(expires + 3600)))

    assert response.status_code == 403


async def test_expired_url_is_403(http: httpx2.AsyncClient, url: str, clock: FakeClock) -> None:
    clock.advance(599)
    assert (await http.get(url)).status_code == 200

    clock.advance(1)

    response = await http.get(url)
    assert response.status_code == 403
    assert response.json() == {"error": "Invalid or expired file URL"}


async def test_matching_if_none_match_is_304(http: httpx2.AsyncClient, url: str) -> None:
    etag = (await http.get(url)).headers["etag"]

    response = await http.get(url, headers={"If-None-Match": f'"stale", {etag}'})

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag


async def test_other_if_none_match_serves_the_file(http: httpx2.AsyncClient, url: str) -> None:
    response = await http.get(url, headers={"If-None-Match": '"not-the-etag"'})

    assert response.status_code == 200
    assert response.content == PNG


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-7", 0, 8),
        ("bytes=100-", 100, len(PNG)),
        ("bytes=-16", len(PNG) - 16, len(PNG)),
        ("bytes=1000-999999", 1000, len(PNG)),
    ],
)
async def test_range_is_206_with_content_range(
    http: httpx2.AsyncClient, url: str, header: str, start: int, end: int
) -> None:
    response = await http.get(url, headers={"Range": header})

    assert response.status_code == 206
    assert response.content == PNG[start:end]
    assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{len(PNG)}"
    assert response.headers["content-type"] == "image/png"


@pytest.mark.parametrize("header", [f"bytes={len(PNG)}-", "bytes=10-5", "bytes=-0"])
async def test_unsatisfiable_range_is_416(http: httpx2.AsyncClient, url: str, header: str) -> None:
    response = await http.get(url, headers={"Range": header})

    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(PNG)}"


async def test_deleted_object_is_404(
    http: httpx2.AsyncClient, url: str, object_store: ObstoreObjectStore
) -> None:
    await object_store.delete(KEY)

    response = await http.get(url)

    assert response.status_code == 404
    assert response.json() == {"error": "File not found"}


async def test_odd_key_url_round_trips_through_the_route(
    http: httpx2.AsyncClient, object_store: ObstoreObjectStore, signer: UrlSigner
) -> None:
    key = "uploads/up 01/photo (1) ü+&=.png"
    await object_store.put(key, PNG, "image/png")

    response = await http.get(signer.sign(key, 600))

    assert response.status_code == 200, response.text
    assert response.content == PNG
