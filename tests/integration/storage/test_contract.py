"""The ``ObjectStore`` contract, run on every backend: local directory, memory and SeaweedFS S3."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx2
import pytest

from imagegate.storage.obstore_backend import PART_BYTES, ObstoreObjectStore
from imagegate.storage.port import ObjectNotFound, ObjectStore
from imagegate.storage.signing import UrlSigner
from imagegate.testing.clock import FakeClock
from imagegate.testing.seaweed import S3Server
from tests.integration.storage.conftest import GATEWAY_BASE

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
KEY = "outputs/job_01/1.png"


def test_every_backend_is_an_object_store(object_store: ObstoreObjectStore) -> None:
    assert isinstance(object_store, ObjectStore)


async def test_put_then_get_returns_the_same_bytes(object_store: ObstoreObjectStore) -> None:
    stored = await object_store.put(KEY, PNG, "image/png")

    assert (stored.key, stored.size, stored.content_type) == (KEY, len(PNG), "image/png")
    assert stored.etag
    assert await object_store.get(KEY) == PNG


async def test_put_file_streams_a_multipart_sized_file_and_reads_back_the_same_bytes(
    object_store: ObstoreObjectStore, tmp_path: Path
) -> None:
    data = os.urandom(2 * PART_BYTES + 12345)  # three parts where the backend has parts
    source = tmp_path / "spooled.png"
    source.write_bytes(data)

    stored = await object_store.put_file(KEY, source, "image/png")

    assert (stored.key, stored.size, stored.content_type) == (KEY, len(data), "image/png")
    assert await object_store.get(KEY) == data
    meta = await object_store.head(KEY)
    assert (meta.size, meta.etag) == (len(data), stored.etag)
    assert (
        await object_store.get_range(KEY, PART_BYTES - 4, PART_BYTES + 4)
        == (data[PART_BYTES - 4 : PART_BYTES + 4])
    )


async def test_head_reports_size_type_and_the_put_etag(object_store: ObstoreObjectStore) -> None:
    stored = await object_store.put(KEY, PNG, "image/png")

    meta = await object_store.head(KEY)

    assert meta == stored


async def test_head_keeps_the_put_content_type_where_the_backend_stores_attributes(
    object_store: ObstoreObjectStore, backend: str
) -> None:
    await object_store.put("uploads/u1/blob", b"RIFF....WEBP", "image/webp")

    meta = await object_store.head("uploads/u1/blob")

    # A local directory keeps no attributes: its type comes from the key's extension.
    expected = "application/octet-stream" if backend == "local" else "image/webp"
    assert meta.content_type == expected


async def test_get_range_returns_the_half_open_span(object_store: ObstoreObjectStore) -> None:
    await object_store.put(KEY, PNG, "image/png")

    assert await object_store.get_range(KEY, 0, 8) == PNG[:8]
    assert await object_store.get_range(KEY, 100, 612) == PNG[100:612]
    assert await object_store.get_range(KEY, len(PNG) - 1, len(PNG)) == PNG[-1:]


async def test_put_overwrites(object_store: ObstoreObjectStore) -> None:
    first = await object_store.put(KEY, PNG, "image/png")
    second = await object_store.put(KEY, b"smaller", "image/png")

    assert await object_store.get(KEY) == b"smaller"
    meta = await object_store.head(KEY)
    assert meta.size == len(b"smaller")
    assert meta.etag == second.etag != first.etag


async def test_delete_removes_and_tolerates_missing_keys(object_store: ObstoreObjectStore) -> None:
    await object_store.put(KEY, PNG, "image/png")

    await object_store.delete(KEY)

    with pytest.raises(ObjectNotFound):
        await object_store.get(KEY)
    await object_store.delete(KEY)
    await object_store.delete("never/written.png")


@pytest.mark.parametrize("operation", ["get", "head", "get_range"])
async def test_missing_key_raises_object_not_found(
    object_store: ObstoreObjectStore, operation: str
) -> None:
    with pytest.raises(ObjectNotFound) as raised:
        if operation == "get":
            await object_store.get("outputs/missing/1.png")
        elif operation == "head":
            await object_store.head("outputs/missing/1.png")
        else:
            await object_store.get_range("outputs/missing/1.png", 0, 4)
    assert raised.value.args == ("outputs/missing/1.png",)


async def test_nested_keys_are_independent(object_store: ObstoreObjectStore) -> None:
    await object_store.put("a/b/c/deep.png", b"deep", "image/png")
    await object_store.put("a/b/shallow.png", b"shallow", "image/png")
    await object_store.put("a/b/c/other.webp", b"other", "image/webp")

    await object_store.delete("a/b/c/deep.png")

    assert await object_store.get("a/b/shallow.png") == b"shallow"
    assert await object_store.get("a/b/c/other.webp") == b"other"
    with pytest.raises(ObjectNotFound):
        await object_store.head("a/b/c/deep.png")


@pytest.mark.parametrize("backend", ["local", "memory", "s3-gateway"], indirect=True)
async def test_url_is_a_gateway_url_the_signer_accepts(
    object_store: ObstoreObjectStore, signer: UrlSigner, clock: FakeClock
) -> None:
    await object_store.put(KEY, PNG, "image/png")

    url = await object_store.url(KEY, 600)

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{GATEWAY_BASE}/files/{quote(KEY)}"
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    now_s = clock.now_ms() // 1000
    assert int(query["expires"]) == now_s + 600
    assert signer.verify(KEY, query["expires"], query["signature"], now_s)
    assert not signer.verify("outputs/job_01/2.png", query["expires"], query["signature"], now_s)
    assert not signer.verify(KEY, query["expires"], query["signature"], now_s + 600)


@pytest.mark.parametrize("backend", ["s3"], indirect=True)
async def test_presigned_url_downloads_from_s3_and_rejects_tampering(
    object_store: ObstoreObjectStore, seaweed: S3Server
) -> None:
    await object_store.put(KEY, PNG, "image/png")

    url = await object_store.url(KEY, 600)

    assert url.startswith(f"{seaweed.endpoint}/")
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.get(url)
        assert response.status_code == 200, response.text
        assert response.content == PNG
        assert response.headers["content-type"] == "image/png"

        parts = urlsplit(url)
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        signature = query["X-Amz-Signature"]
        query["X-Amz-Signature"] = ("0" if signature[0] != "0" else "1") + signature[1:]
        tampered = parts._replace(query=urlencode(query)).geturl()
        assert (await http.get(tampered)).status_code == 403

        other_key = url.replace("/1.png?", "/2.png?")
        assert other_key != url
        assert (await http.get(other_key)).status_code == 403


ODD_KEY = "uploads/up 01/photo (1) ü+&=.png"


async def test_keys_with_spaces_and_unicode_round_trip(object_store: ObstoreObjectStore) -> None:
    await object_store.put(ODD_KEY, PNG, "image/png")

    assert await object_store.get(ODD_KEY) == PNG
    assert (await object_store.head(ODD_KEY)).size == len(PNG)


@pytest.mark.parametrize("backend", ["s3"], indirect=True)
async def test_presigned_url_of_an_odd_key_downloads(object_store: ObstoreObjectStore) -> None:
    await object_store.put(ODD_KEY, PNG, "image/png")

    url = await object_store.url(ODD_KEY, 600)

    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.get(url)
    assert response.status_code == 200, response.text
    assert response.content == PNG
