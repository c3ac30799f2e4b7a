"""Uploads (sniffed, capped, expiring) and the retention sweeper, through the API."""

from __future__ import annotations

import hashlib
import threading

import pytest
from sqlalchemy import select

from imagegate.services import uploads
from imagegate.services.retention import Swept
from imagegate.storage.port import ObjectNotFound
from imagegate.store import tables
from tests.conftest import count_rows
from tests.images import image_bytes
from tests.integration.conftest import Gateway


async def upload(gw: Gateway, data: bytes, name: str = "x.png", declared: str = "image/png"):  # type: ignore[no-untyped-def]
    return await gw.http.post(
        "/v2/uploads", files={"file": (name, data, declared)}, headers=gw.headers()
    )


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
async def test_upload_sniffs_the_type_and_serves_it(
    gateway: Gateway, fmt: str, content_type: str
) -> None:
    data = image_bytes((32, 24), "blue", fmt)
    response = await upload(gateway, data, name="photo.bin", declared="application/octet-stream")

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "url", "kind", "contentType", "byteSize", "expiresAt"}
    assert body["kind"] == "image"
    assert body["contentType"] == content_type
    assert body["byteSize"] == len(data)
    served = await gateway.http.get(body["url"])
    assert served.status_code == 200
    assert served.content == data
    assert served.headers["content-type"] == content_type


async def test_a_large_upload_is_hashed_off_the_event_loop(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hashing 25 MB takes ~50 ms: a thread does it, not the loop (this test's thread)."""
    data = image_bytes((32, 24), "blue") + b"\0" * (2 * 1024 * 1024)
    hashed_on: list[int] = []

    def spy(data: bytes) -> str:
        hashed_on.append(threading.get_ident())
        return original(data)

    original = uploads._sha256_hex
    monkeypatch.setattr(uploads, "_sha256_hex", spy)
    response = await upload(gateway, data)

    assert response.status_code == 201, response.text
    assert len(hashed_on) == 1 and hashed_on[0] != threading.get_ident()
    async with gateway.runtime.db.transaction() as conn:
        stored = await conn.scalar(select(tables.uploads.c.sha256))
    assert stored == hashlib.sha256(data).hexdigest()


async def test_disguised_non_image_is_400(gateway: Gateway) -> None:
    response = await upload(gateway, b"#!/bin/sh\necho not an image\n" * 10, name="evil.png")
    assert response.status_code == 400
    assert "file" in response.json()["details"]


async def test_over_25_mb_is_413(gateway: Gateway) -> None:
    data = image_bytes((32, 24), "blue") + b"\0" * (26 * 1024 * 1024)
    response = await upload(gateway, data)
    assert response.status_code == 413


async def test_missing_file_is_400(gateway: Gateway) -> None:
    response = await gateway.http.post(
        "/v2/uploads", data={"other": "x"}, headers=gateway.headers()
    )
    assert response.status_code == 400
    assert "file" in response.json()["details"]


async def test_uploads_need_a_key(gateway: Gateway) -> None:
    response = await gateway.http.post(
        "/v2/uploads", files={"file": ("x.png", image_bytes((32, 24), "blue"))}
    )
    assert response.status_code == 401


async def test_sweeper_expires_outputs_and_uploads_with_a_fake_clock(gateway: Gateway) -> None:
    accepted = await gateway.submit({"model": "gpt-image-1.5", "prompt": "x"})
    await gateway.drain()
    job = await gateway.job(accepted.json()["jobId"])
    uploaded = (await upload(gateway, image_bytes((32, 24), "blue"))).json()
    store = gateway.runtime.store
    async with gateway.runtime.db.read() as conn:
        from imagegate.store.retention import get_upload

        key = (await get_upload(conn, uploaded["id"]))["key"]  # type: ignore[index]
    sweeper = gateway.runtime.sweeper()

    gateway.clock.advance(3 * 3600)  # past the upload's 2 h, well inside the outputs' 30 days
    assert await sweeper.sweep() == Swept(jobs=0, uploads=1, idempotency_keys=0)
    with pytest.raises(ObjectNotFound):
        await store.head(key)
    assert (await gateway.job(job["id"]))["result"] is not None

    gateway.clock.advance(31 * 86400)
    assert await sweeper.sweep() == Swept(jobs=1, uploads=0, idempotency_keys=0)
    expired = await gateway.job(job["id"])
    assert expired["expired"] is True
    assert expired["result"] is None
    for record in job["outputs"]:
        assert record["url"]
    async with gateway.runtime.db.read() as conn:
        from imagegate.store import jobs as job_store

        row = await job_store.get_job(conn, job["id"])
    assert row is not None and row.outputs
    for record in row.outputs:
        with pytest.raises(ObjectNotFound):
            await store.head(record.key)
    assert await sweeper.sweep() == Swept(jobs=0, uploads=0, idempotency_keys=0)


async def test_sweeper_forgets_idempotency_keys_once_they_expire(gateway: Gateway) -> None:
    body = {"model": "gpt-image-1.5", "prompt": "a kite", "gptImageParams": {"quality": "low"}}
    first = await gateway.submit(body, **{"Idempotency-Key": "kite-1"})
    gateway.clock.advance(3600)
    await gateway.submit(body, **{"Idempotency-Key": "kite-2"})
    sweeper = gateway.runtime.sweeper()
    ttl_seconds = gateway.runtime.settings.idempotency_ttl_hours * 3600

    gateway.clock.advance(ttl_seconds - 3600 - 1)
    assert (await sweeper.sweep()).idempotency_keys == 0
    assert await count_rows(gateway.runtime.db, "idempotency_keys") == 2
    replay = await gateway.submit(body, **{"Idempotency-Key": "kite-1"})
    assert replay.json()["jobId"] == first.json()["jobId"]

    gateway.clock.advance(1)
    assert (await sweeper.sweep()).idempotency_keys == 1
    assert await count_rows(gateway.runtime.db, "idempotency_keys") == 1
    gateway.clock.advance(3600)
    assert (await sweeper.sweep()).idempotency_keys == 1
    assert await count_rows(gateway.runtime.db, "idempotency_keys") == 0
    assert await count_rows(gateway.runtime.db, "jobs") == 2  # the jobs themselves stay
