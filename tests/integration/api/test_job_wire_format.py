"""The job body and the webhook bodies, pinned field by field and in key order.

Apiframe clients parse these bodies; a renamed, reordered or re-typed field is a breaking change.
Expected values are derived here from what the test did (clock, prices, the downloaded files),
not from the code under test. Key order is the same on both engines (PostgreSQL's JSONB reorders
the keys of what it stores, so nothing read back from it may decide an order on the wire).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pytest_httpserver import HTTPServer

from tests.integration.conftest import SANDBOX_ROUTES, Gateway, open_gateway

MIDJOURNEY = {
    "model": "midjourney",
    "prompt": "a castle",
    "midjourneyParams": {"aspect_ratio": "16:9"},
}
SIGNED_FILE_URL = re.compile(
    r"^http://testserver/files/outputs/[0-9a-f]{2}/[0-9a-f-]{36}-(\d|grid)\.\w+\?"
)


@pytest.fixture
async def gateway(database_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with open_gateway(
        database_url, tmp_path / "data", routes=SANDBOX_ROUTES, output_retention_days=30
    ) as gw:
        yield gw


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


async def test_completed_job_body_field_by_field(gateway: Gateway, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    body = {**MIDJOURNEY, "webhookUrl": httpserver.url_for("/hook")}
    created = gateway.clock.now_ms()
    job_id = (await gateway.submit(body, key=gateway.live_key)).json()["jobId"]
    await gateway.drain()

    job = await gateway.job(job_id, key=gateway.live_key)

    assert list(job) == [
        "id",
        "status",
        "model",
        "progress",
        "result",
        "error",
        "creditCost",
        "webhookStatus",
        "createdAt",
        "completedAt",
        "expired",
        "outputs",
        "servedBy",
        "expiresAt",
        "input",
    ]
    assert job["id"] == job_id
    assert job["status"] == "COMPLETED"
    assert job["model"] == "midjourney"
    assert job["progress"] == 100
    assert list(job["result"]) == ["images", "gridUrl"]
    assert len(job["result"]["images"]) == 4
    assert all(SIGNED_FILE_URL.match(url) for url in job["result"]["images"])
    assert "-grid." in job["result"]["gridUrl"]
    assert job["error"] is None
    assert job["creditCost"] == 16
    assert job["webhookStatus"] == "pending"
    assert job["createdAt"] == iso(created)
    completed = datetime.fromisoformat(job["completedAt"]).timestamp()
    assert job["completedAt"].endswith("Z") and completed * 1000 >= created
    assert job["expired"] is False
    assert job["servedBy"] == {"provider": "sandbox", "model": "midjourney"}
    expires = datetime.fromisoformat(job["expiresAt"]).timestamp()
    assert round((expires - completed) / 86_400) == 30
    assert job["input"] == body

    assert len(job["outputs"]) == 4
    for url, output in zip(job["result"]["images"], job["outputs"], strict=True):
        assert list(output) == ["contentType", "byteSize", "width", "height", "sha256", "url"]
        data = (await gateway.http.get(url)).content
        image = Image.open(io.BytesIO(data))
        assert output["contentType"] == f"image/{image.format.lower()}"  # type: ignore[union-attr]
        assert output["byteSize"] == len(data)
        assert (output["width"], output["height"]) == image.size
        assert output["sha256"] == hashlib.sha256(data).hexdigest()
        assert output["url"] == url

    listed = (await gateway.http.get("/v2/jobs", headers=gateway.headers(gateway.live_key))).json()
    assert list(listed) == ["jobs", "nextCursor", "hasMore"]
    (summary,) = listed["jobs"]
    assert list(summary) == list(job)[:-1]  # the list leaves out each job's input
    assert {k: v for k, v in summary.items() if k != "result" and k != "outputs"} == {
        k: v for k, v in job.items() if k not in ("result", "outputs", "input")
    }


async def test_sandbox_and_queued_job_bodies(gateway: Gateway) -> None:
    created = gateway.clock.now_ms()
    response = await gateway.submit(MIDJOURNEY)
    assert response.json() == {"jobId": response.json()["jobId"], "status": "QUEUED"}
    assert list(response.json()) == ["jobId", "status"]
    job_id = response.json()["jobId"]

    assert await gateway.job(job_id) == {
        "id": job_id,
        "status": "QUEUED",
        "model": "midjourney",
        "progress": 0,
        "result": None,
        "error": None,
        "creditCost": 0,
        "webhookStatus": None,
        "createdAt": iso(created),
        "completedAt": None,
        "expired": False,
        "sandbox": True,
        "input": MIDJOURNEY,
    }
    assert list(await gateway.job(job_id))[-2:] == ["sandbox", "input"]


async def test_webhook_bodies_field_by_field(gateway: Gateway, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    events = ["progress", "completed", "failed"]
    hook = httpserver.url_for("/hook")
    ok = {
        **MIDJOURNEY,
        "prompt": "a castle [[latency:3]]",
        "webhookUrl": hook,
        "webhookEvents": events,
    }
    bad = {**MIDJOURNEY, "prompt": "x [[fail:moderated]]", "webhookUrl": hook}
    ok_id = (await gateway.submit(ok, key=gateway.live_key)).json()["jobId"]
    bad_id = (await gateway.submit(bad, key=gateway.live_key)).json()["jobId"]
    await gateway.drain()
    sender = gateway.runtime.webhook_sender()
    try:
        await sender.drain(20)
    finally:
        await sender.aclose()

    sent: list[dict[str, Any]] = []
    for request, _ in httpserver.log:
        raw = request.get_data()
        payload = json.loads(raw)
        assert raw == json.dumps(payload, separators=(",", ":")).encode()  # compact, as pinned
        sent.append(payload)
    ok_job = await gateway.job(ok_id, key=gateway.live_key)
    bad_job = await gateway.job(bad_id, key=gateway.live_key)

    completed = [p for p in sent if p["event"] == "completed"]
    assert completed == [
        {
            "event": "completed",
            "jobId": ok_id,
            "status": "COMPLETED",
            "progress": 100,
            "result": ok_job["result"],
            "model": "midjourney",
            "creditCost": 16,
            "completedAt": ok_job["completedAt"],
        }
    ]
    assert list(completed[0]) == [
        "event",
        "jobId",
        "status",
        "progress",
        "result",
        "model",
        "creditCost",
        "completedAt",
    ]
    failed = [p for p in sent if p["event"] == "failed"]
    assert failed == [
        {
            "event": "failed",
            "jobId": bad_id,
            "status": "FAILED",
            "error": bad_job["error"],
            "model": "midjourney",
            "creditCost": 0,
            "completedAt": bad_job["completedAt"],
        }
    ]
    assert list(failed[0]) == [
        "event",
        "jobId",
        "status",
        "error",
        "model",
        "creditCost",
        "completedAt",
    ]
    progress = [p for p in sent if p["event"] == "progress"]
    assert progress, "the sandbox reports progress while a midjourney job runs"
    for payload in progress:
        assert list(payload) == ["event", "jobId", "status", "progress", "model"]
        assert payload["jobId"] == ok_id and payload["status"] == "PROCESSING"
        assert 0 < payload["progress"] < 100 and payload["model"] == "midjourney"

    log = (
        await gateway.http.get(
            f"/v2/jobs/{ok_id}/webhooks", headers=gateway.headers(gateway.live_key)
        )
    ).json()
    assert list(log) == ["jobId", "webhookUrl", "webhookStatus", "deliveries"]
    assert (log["jobId"], log["webhookUrl"], log["webhookStatus"]) == (ok_id, hook, "delivered")
    for delivery in log["deliveries"]:
        assert list(delivery) == [
            "id",
            "event",
            "status",
            "attempts",
            "nextAttemptAt",
            "createdAt",
            "deliveredAt",
        ]
        assert delivery["status"] == "delivered" and delivery["nextAttemptAt"] is None
        (attempt,) = delivery["attempts"]
        assert attempt == {
            "attemptedAt": delivery["deliveredAt"],
            "statusCode": 200,
            "latencyMs": attempt["latencyMs"],
            "error": None,
            "nextAttemptAt": None,
        }
        assert list(attempt) == ["attemptedAt", "statusCode", "latencyMs", "error", "nextAttemptAt"]
