"""Which events are sent, their exact bytes, secret rotation, the delivery log and redelivery."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from imagegate.services import accounts as account_service
from imagegate.store import accounts
from imagegate.store.tables import job_events
from imagegate.types import KeyKind
from imagegate.webhooks.signing import new_secret
from tests.integration.conftest import SANDBOX_ROUTES, Gateway, open_gateway

BODY = {"model": "gpt-image-1.5", "prompt": "a kite", "gptImageParams": {"quality": "low"}}
ISO = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


@pytest.fixture
async def gateway(database_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with open_gateway(database_url, tmp_path / "data", routes=SANDBOX_ROUTES) as gw:
        yield gw


async def send_all(gw: Gateway) -> None:
    sender = gw.runtime.webhook_sender()
    try:
        await sender.drain(20)
    finally:
        await sender.aclose()


async def submit(gw: Gateway, **fields: Any) -> str:
    response = await gw.submit({**BODY, **fields}, key=gw.live_key)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["jobId"]
    return job_id


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def received(server: HTTPServer) -> list[tuple[str, dict[str, Any]]]:
    return [(r.headers["X-Webhook-Event"], json.loads(r.get_data())) for r, _ in server.log]


async def test_default_events_are_completed_and_failed_only(
    gateway: Gateway, httpserver: HTTPServer
) -> None:
    """No ``webhookEvents``: the job's progress changes are not sent, its end is."""
    httpserver.expect_request("/hook").respond_with_data("ok")
    url = httpserver.url_for("/hook")
    done = await submit(gateway, webhookUrl=url, prompt="kite [[latency:3]]")
    failed = await submit(gateway, webhookUrl=url, prompt="x [[fail:moderated]]")
    await gateway.drain()
    async with gateway.runtime.db.read() as conn:
        changes = await conn.scalar(
            select(func.count())
            .select_from(job_events)
            .where(job_events.c.job_id == done, job_events.c.kind == "progress")
        )
    assert changes, "the job did make progress"
    await send_all(gateway)

    events = sorted((payload["jobId"], event) for event, payload in received(httpserver))
    assert events == sorted([(done, "completed"), (failed, "failed")])


async def test_progress_payload_is_the_progress_of_its_moment(
    gateway: Gateway, httpserver: HTTPServer
) -> None:
    """Sent after the job completed, each ``progress`` webhook still carries the status and
    progress of the change it announces, in the reference shape and key order."""
    httpserver.expect_request("/hook").respond_with_data("ok")
    job_id = await submit(
        gateway,
        webhookUrl=httpserver.url_for("/hook"),
        webhookEvents=["progress", "completed"],
        prompt="kite [[latency:3]]",
    )
    await gateway.drain()
    assert (await gateway.job(job_id, key=gateway.live_key))["status"] == "COMPLETED"
    await send_all(gateway)

    progress = [r for r, _ in httpserver.log if r.headers["X-Webhook-Event"] == "progress"]
    assert progress, "the sandbox job reported progress"
    values = []
    for request in progress:
        payload = json.loads(request.get_data())
        assert list(payload) == ["event", "jobId", "status", "progress", "model"]
        assert payload["event"] == "progress" and payload["jobId"] == job_id
        assert payload["status"] == "PROCESSING"
        assert payload["model"] == "gpt-image-1.5"
        expected = json.dumps(payload, separators=(",", ":")).encode()
        assert request.get_data() == expected  # compact JSON, exactly what was signed
        values.append(payload["progress"])
    assert all(0 < v < 100 for v in values)
    assert values == sorted(set(values))


async def test_rotation_sends_both_signatures_and_each_verifies(
    gateway: Gateway, httpserver: HTTPServer
) -> None:
    async with gateway.runtime.db.read() as conn:
        account = await accounts.get_account(conn, gateway.account_id)
    assert account is not None and account.webhook_secret is not None
    old = account.webhook_secret
    new, previous = await account_service.rotate_webhook_secret(
        gateway.runtime.db, gateway.account_id
    )
    assert previous == old and new != old and new.startswith("whsec_")

    httpserver.expect_request("/hook").respond_with_data("ok")
    await submit(gateway, webhookUrl=httpserver.url_for("/hook"))
    await gateway.drain()
    await send_all(gateway)

    ((request, _),) = httpserver.log
    body, headers = request.get_data(), dict(request.headers)
    assert len(headers["Webhook-Signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)  # receivers not yet updated keep working
    Webhook(new).verify(body, headers)  # updated receivers already work
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)

    newest, previous = await account_service.rotate_webhook_secret(
        gateway.runtime.db, gateway.account_id
    )
    assert previous == new
    httpserver.clear_log()
    await submit(gateway, webhookUrl=httpserver.url_for("/hook"))
    await gateway.drain()
    await send_all(gateway)
    ((request, _),) = httpserver.log
    body, headers = request.get_data(), dict(request.headers)
    Webhook(newest).verify(body, headers)
    Webhook(new).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, headers)  # two rotations ago: no longer signing


async def test_delivery_log_shape(gateway: Gateway, httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request("/hook").respond_with_data("boom", status=503)
    httpserver.expect_ordered_request("/hook").respond_with_data("ok")
    url = httpserver.url_for("/hook")
    job_id = await submit(gateway, webhookUrl=url)
    await gateway.drain()
    await send_all(gateway)

    path = f"/v2/jobs/{job_id}/webhooks"
    pending = (await gateway.http.get(path, headers=gateway.headers(gateway.live_key))).json()
    assert pending["jobId"] == job_id
    assert pending["webhookUrl"] == url
    assert pending["webhookStatus"] == "pending"
    (delivery,) = pending["deliveries"]
    assert set(delivery) == {
        "id",
        "event",
        "status",
        "attempts",
        "nextAttemptAt",
        "createdAt",
        "deliveredAt",
    }
    assert delivery["event"] == "completed" and delivery["status"] == "pending"
    assert delivery["deliveredAt"] is None
    (attempt,) = delivery["attempts"]
    assert set(attempt) == {"attemptedAt", "statusCode", "latencyMs", "error", "nextAttemptAt"}
    assert attempt["statusCode"] == 503 and attempt["error"] == "HTTP 503"
    assert isinstance(attempt["latencyMs"], int) and attempt["latencyMs"] >= 0
    assert attempt["nextAttemptAt"] == delivery["nextAttemptAt"]
    for value in (attempt["attemptedAt"], attempt["nextAttemptAt"], delivery["createdAt"]):
        assert isinstance(value, str)
        assert re.match(ISO, value), value
    delay = at(attempt["nextAttemptAt"]) - at(attempt["attemptedAt"])
    assert 4.5 <= delay.total_seconds() <= 5.5, "5 s ± 10 % jitter before the second attempt"

    gateway.clock.advance(60)
    await send_all(gateway)
    done = (await gateway.http.get(path, headers=gateway.headers(gateway.live_key))).json()
    assert done["webhookStatus"] == "delivered"
    (delivery,) = done["deliveries"]
    assert delivery["status"] == "delivered" and delivery["nextAttemptAt"] is None
    assert delivery["deliveredAt"] is not None
    assert [a["statusCode"] for a in delivery["attempts"]] == [503, 200]
    assert delivery["attempts"][1]["error"] is None
    assert delivery["attempts"][1]["nextAttemptAt"] is None


async def test_delivery_log_of_a_job_without_webhook_and_of_another_account(
    gateway: Gateway,
) -> None:
    job_id = await submit(gateway)
    response = await gateway.http.get(
        f"/v2/jobs/{job_id}/webhooks", headers=gateway.headers(gateway.live_key)
    )
    assert response.status_code == 200
    assert response.json() == {
        "jobId": job_id,
        "webhookUrl": None,
        "webhookStatus": None,
        "deliveries": [],
    }
    stranger = await account_service.create_account(
        gateway.runtime.db, gateway.clock, "other", "other@example.test"
    )
    key = await account_service.create_key(
        gateway.runtime.db, gateway.clock, stranger.id, KeyKind.LIVE, "k"
    )
    for method, path in (("GET", "webhooks"), ("POST", "webhooks/redeliver")):
        response = await gateway.http.request(
            method, f"/v2/jobs/{job_id}/{path}", headers=gateway.headers(key.secret)
        )
        assert response.status_code == 404, response.text


async def test_redeliver_after_410_sends_again_and_updates_status(
    gateway: Gateway, httpserver: HTTPServer
) -> None:
    """The receiver said 410 (give up); after it is fixed, the user asks for a redelivery."""
    httpserver.expect_ordered_request("/hook").respond_with_data("gone", status=410)
    httpserver.expect_ordered_request("/hook").respond_with_data("ok")
    job_id = await submit(gateway, webhookUrl=httpserver.url_for("/hook"))
    await gateway.drain()
    await send_all(gateway)
    assert (await gateway.job(job_id, key=gateway.live_key))["webhookStatus"] == "failed"

    response = await gateway.http.post(
        f"/v2/jobs/{job_id}/webhooks/redeliver", headers=gateway.headers(gateway.live_key)
    )
    assert response.status_code == 202, response.text
    log = (
        await gateway.http.get(
            f"/v2/jobs/{job_id}/webhooks", headers=gateway.headers(gateway.live_key)
        )
    ).json()
    (delivery,) = log["deliveries"]
    assert response.json() == {"id": delivery["id"], "event": "completed", "status": "pending"}
    assert (await gateway.job(job_id, key=gateway.live_key))["webhookStatus"] == "pending"

    await send_all(gateway)
    assert len(httpserver.log) == 2
    assert len({r.headers["webhook-id"] for r, _ in httpserver.log}) == 1
    assert (await gateway.job(job_id, key=gateway.live_key))["webhookStatus"] == "delivered"


async def test_redeliver_without_a_finished_event_is_409(
    gateway: Gateway, httpserver: HTTPServer
) -> None:
    without_webhook = await submit(gateway)
    response = await gateway.http.post(
        f"/v2/jobs/{without_webhook}/webhooks/redeliver", headers=gateway.headers(gateway.live_key)
    )
    assert response.status_code == 409, response.text
    not_finished = await submit(gateway, webhookUrl=httpserver.url_for("/hook"))
    response = await gateway.http.post(
        f"/v2/jobs/{not_finished}/webhooks/redeliver", headers=gateway.headers(gateway.live_key)
    )
    assert response.status_code == 409, response.text
    assert httpserver.log == []


async def test_a_failing_progress_webhook_does_not_hold_back_completed(
    gateway: Gateway, httpserver: HTTPServer
) -> None:
    """A job's webhooks go out one at a time in order, but a delivery waiting for its retry
    does not block the job's later ones."""
    httpserver.expect_request("/hook", headers={"X-Webhook-Event": "progress"}).respond_with_data(
        "boom", status=500
    )
    httpserver.expect_request("/hook", headers={"X-Webhook-Event": "completed"}).respond_with_data(
        "ok"
    )
    job_id = await submit(
        gateway,
        webhookUrl=httpserver.url_for("/hook"),
        webhookEvents=["progress", "completed"],
        prompt="kite [[latency:3]]",
    )
    await gateway.drain()
    await send_all(gateway)

    assert (await gateway.job(job_id, key=gateway.live_key))["webhookStatus"] == "delivered"
    events = [r.headers["X-Webhook-Event"] for r, _ in httpserver.log]
    assert events[-1] == "completed" and "progress" in events
    log = (
        await gateway.http.get(
            f"/v2/jobs/{job_id}/webhooks", headers=gateway.headers(gateway.live_key)
        )
    ).json()
    statuses = {(d["event"], d["status"]) for d in log["deliveries"]}
    assert statuses == {("progress", "pending"), ("completed", "delivered")}
