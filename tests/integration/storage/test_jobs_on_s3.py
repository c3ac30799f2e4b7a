"""A whole gateway whose storage is a real S3-compatible server (SeaweedFS)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx2
import obstore
from PIL import Image

from imagegate.storage.port import ObjectStore
from tests.images import image_bytes
from tests.integration.conftest import SANDBOX_ROUTES, open_gateway

BODY = {
    "model": "gpt-image-1.5",
    "prompt": "a lighthouse on a cliff",
    "gptImageParams": {"output_format": "png", "number_of_images": 2, "aspect_ratio": "3:2"},
}


async def keys_in(store: ObjectStore) -> list[str]:
    inner = store._store  # type: ignore[attr-defined]
    listing = await obstore.list(inner).collect_async()
    return sorted(item["path"] for item in listing)


async def test_outputs_land_in_s3_and_presigned_urls_serve_them(
    sqlite_url: str, tmp_path: Path, s3_storage_settings: dict[str, Any]
) -> None:
    async with open_gateway(
        sqlite_url, tmp_path / "data", routes=SANDBOX_ROUTES, **s3_storage_settings
    ) as gw:
        accepted = await gw.submit(BODY, key=gw.live_key)
        job_id = accepted.json()["jobId"]
        await gw.drain()
        job = await gw.job(job_id, key=gw.live_key)
        assert job["status"] == "COMPLETED"
        assert await keys_in(gw.runtime.store) == [
            f"outputs/{job_id[-2:]}/{job_id}-1.png",
            f"outputs/{job_id[-2:]}/{job_id}-2.png",
        ]
        endpoint = s3_storage_settings["storage_options"]["endpoint"]
        async with httpx2.AsyncClient() as http:
            for url in job["result"]["images"]:
                assert url.startswith(endpoint)
                assert "X-Amz-Signature=" in url
                download = await http.get(url)
                assert download.status_code == 200
                assert download.headers["content-type"] == "image/png"
                image = Image.open(io.BytesIO(download.content))
                assert image.width > image.height
            tampered = job["result"]["images"][0].replace("X-Amz-Signature=", "X-Amz-Signature=0")
            assert (await http.get(tampered)).status_code == 403


async def test_gateway_signed_urls_in_front_of_s3(
    sqlite_url: str, tmp_path: Path, s3_storage_settings: dict[str, Any]
) -> None:
    settings = {**s3_storage_settings, "storage_url_mode": "gateway"}
    async with open_gateway(sqlite_url, tmp_path / "data", routes=SANDBOX_ROUTES, **settings) as gw:
        job_id = (await gw.submit(BODY, key=gw.live_key)).json()["jobId"]
        await gw.drain()
        url = (await gw.job(job_id, key=gw.live_key))["result"]["images"][1]
        assert url.startswith("http://testserver/files/outputs/")
        download = await gw.http.get(url)
        assert download.status_code == 200
        assert download.headers["content-type"] == "image/png"
        assert download.headers["etag"]
        partial = await gw.http.get(url, headers={"Range": "bytes=0-7"})
        assert partial.status_code == 206
        assert partial.content == b"\x89PNG\r\n\x1a\n"


async def test_uploads_go_to_s3_and_expire_there(
    sqlite_url: str, tmp_path: Path, s3_storage_settings: dict[str, Any]
) -> None:
    async with open_gateway(sqlite_url, tmp_path / "data", **s3_storage_settings) as gw:
        response = await gw.http.post(
            "/v2/uploads",
            files={"file": ("a.bin", image_bytes((40, 30), "teal"), "application/octet-stream")},
            headers=gw.headers(),
        )
        assert response.status_code == 201, response.text
        upload = response.json()
        assert upload["contentType"] == "image/png"
        keys = await keys_in(gw.runtime.store)
        assert len(keys) == 1 and keys[0].startswith("uploads/")

        gw.clock.advance(gw.runtime.settings.upload_ttl_seconds + 1)
        assert (await gw.runtime.sweeper().sweep()).uploads == 1
        assert await keys_in(gw.runtime.store) == []
