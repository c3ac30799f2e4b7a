"""``/readyz``: database, storage and every provider's state; 503 (with Retry-After) when the
database or the storage does not answer, never because of a provider (an open circuit shows
there without making the gateway unready: ``tests/integration/queue/test_routing.py``)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.integration.conftest import Gateway, open_gateway

CLOSED = "127.0.0.1:9"  # the discard port: nothing listens there
DOWN_BUCKET = {
    "storage_url": "s3://imagegate/outputs",
    "storage_options": {
        "endpoint": f"http://{CLOSED}",
        "region": "us-east-1",
        "access_key_id": "imagegate",
        "secret_access_key": "imagegate-secret",
        "path_style": "true",
        "allow_http": "true",
    },
}


async def test_ready_names_database_storage_and_providers(gateway: Gateway) -> None:
    response = await gateway.http.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "storage": "ok"}
    assert isinstance(body["providers"], dict)


async def test_storage_down_is_503_and_named(database_url: str, tmp_path: Path) -> None:
    async with open_gateway(database_url, tmp_path / "data", **DOWN_BUCKET) as gw:
        started = time.monotonic()
        response = await gw.http.get("/readyz")
        took = time.monotonic() - started
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"] == {"database": "ok", "storage": "unavailable"}
    assert took < 10, f"/readyz took {took:.1f} s against a bucket that does not answer"
