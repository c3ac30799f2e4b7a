"""Webhook delivery to a real HTTP receiver on 127.0.0.1, on both database engines."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks.webhooks import Webhook
from werkzeug import Response

from imagegate.store import accounts
from imagegate.webhooks.delivery import SCHEDULE
from tests.conftest import count_rows
from tests.integration.conftest import SANDBOX_ROUTES, Gateway, open_gateway

BODY = {"model": "gpt-image-1.5", "prompt": "a kite", "gptImageParams": {"quality": "low"}}


@pytest.fixture
async def gateway(database_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with open_gateway(database_url, tmp_path / "data", routes=SANDBOX_ROUTES) as gw:
        yield gw


async def secret_of(gw: Gateway) -> str:
    async with gw.runtime.db.read() as conn:
        account = await accounts.get_account(conn, gw.account_id)
    assert account is not None and account.webhook_secret is not None
    return account.webhook_secret


def apiframe_signature(api_key: str, body: bytes) -> str:
    """Apiframe's scheme written out independently: HMAC-SHA256 keyed by SHA-256(key) bytes."""
    secret = hashlib.sha256(api_key.encode()).digest()
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


async def send_all(gw: Gateway, rounds: int = 20) -> None:
    sender = gw.runtime.webhook_sender()
    try:
        await sender.drain(rounds)
    finally:
        await sender.aclose()


async def run_job(gw: Gateway, url: str, events: list[str] | None = None, **overrides: Any) -> str:
    body: dict[str, Any] = {**BODY, "webhookUrl": url, **overrides}
    if events is not None:
        body["webhookEvents"] = events
    response = await gw.submit(body, key=gw.live_key)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["jobId"]
    await gw.drain()
    return job_id


async def test_completed_event_exact_bytes_and_both_signatures(
    gateway: Gateway, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    job_id = await run_job(gateway, httpserver.url_for("/hook"))
    assert (await gateway.job(job_id, key=gateway.live_key))["webhookStatus"] == "pending"

    await send_all(gateway)

    ((request, _),) = httpserver.log
    view = await gateway.job(job_id, key=gateway.live_key)
    announced = {
        "event": "completed",
        "jobId": job_id,
        "status": "COMPLETED",
        "progress": 100,
        "result": view["result"],
        "model": "gpt-image-1.5",
        "creditCost": 4,
        "completedAt": view["completedAt"],
    }
    expected = json.dumps(announced, separators=(",", ":")).encode()
    assert request.get_data() == expected
    payload = json.loads(request.get_data())
    assert payload["event"] == "completed" and payload["jobId"] == job_id
    assert payload["result"] == view["result"] and payload["creditCost"] == 4
    assert request.headers["X-Webhook-Event"] == "completed"
    assert request.headers["X-Webhook-Signature"] == apiframe_signature(gateway.live_key, expected)
    Webhook(await secret_of(gateway)).verify(expected, dict(request.headers))
    assert view["webhookStatus"] == "delivered"


async def test_a_finished_job_wakes_the_sender_instead_of_waiting_for_its_poll(
    database_url: str, tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    async with open_gateway(
        database_url, tmp_path / "data", routes=SANDBOX_ROUTES, poll_interval_seconds=60
    ) as gw:
        sender = gw.runtime.webhook_sender()
        sending = asyncio.create_task(sender.run())
        try:
            await asyncio.sleep(0.2)  # the sender found nothing due and sleeps its minute
            job_id = await run_job(gw, httpserver.url_for("/hook"))
            finished = time.monotonic()
            while not httpserver.log and time.monotonic() - finished < 10:
                await asyncio.sleep(0.01)
            waited = time.monotonic() - finished
        finally:
            sender.stop()
            await sending
            await sender.aclose()
    ((request, _),) = httpserver.log
    assert json.loads(request.get_data())["jobId"] == job_id
    assert waited < 5, f"the webhook left {waited:.1f} s after the job finished"


async def test_failed_event_payload(gateway: Gateway, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    job_id = await run_job(gateway, httpserver.url_for("/hook"), prompt="x [[fail:moderated]]")
    await send_all(gateway)

    ((request, _),) = httpserver.log
    payload = json.loads(request.get_data())
    assert payload["event"] == "failed"
    assert payload["status"] == "FAILED"
    assert payload["jobId"] == job_id
    assert "content policy" in payload["error"]
    assert payload["creditCost"] == 0


async def test_only_requested_events_are_sent(gateway: Gateway, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    await run_job(gateway, httpserver.url_for("/hook"), events=["failed"])
    await send_all(gateway)
    assert httpserver.log == []


async def test_500_then_200_is_delivered_after_a_retry(
    gateway: Gateway, httpserver: HTTPServer
) -> None:
    httpserver.expect_ordered_request("/hook").respond_with_data("boom", status=500)
    httpserver.expect_ordered_request("/hook").respond_with_data("ok")
    job_id = await run_job(gateway, httpserver.url_for("/hook"))

    await send_all(gateway)
    assert len(httpserver.log) == 1
    assert (await gateway.job(job_id, key=gateway.live_key))["webhookStatus"] == "pending"
    gateway.clock.advance(SCHEDULE[1] * 1.2)
    await send_all(gateway)

    assert len(httpserver.log) == 2
    ids = {request.headers["webhook-id"] for request, _ in httpserver.log}
    assert len(ids) == 1, "retries keep the webhook-id"
    assert (await gateway.job(job_id, key=gateway.live_key))["webhookStatus"] == "delivered"
    log = (
        await gateway.http.get(
            f"/v2/jobs/{job_id}/webhooks", headers=gateway.headers(gateway.live_key)
        )
    ).json()
    (delivery,) = log["deliveries"]
    assert [a["statusCode"] for a in delivery["attempts"]] == [500, 200]
    assert delivery["status"] == "delivered"
    assert delivery["attempts"][0]["nextAttemptAt"] is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_receiver_down_for_hours_gets_it_when_back(gateway: Gateway) -> None:
    port = free_port()
    job_id = await run_job(gateway, f"http://127.0.0.1:{port}/hook")
    for _ in range(6):
        await send_all(gateway)
        assert (await gateway.job(job_id, key=gateway.live_key))["webhookStatus"] == "pending"
        gateway.clock.advance(3600)

    receiver = HTTPServer(host="127.0.0.1", port=port)
    receiver.expect_request("/hook").respond_with_data("ok")
    receiver.start()
    try:
        gateway.clock.advance(SCHEDULE[-1])
        await send_all(gateway)
        assert len(receiver.log) == 1
    finally:
        receiver.stop()
    assert (await gateway.job(job_id, key=gateway.live_key))["webhookStatus"] == "delivered"


async def test_exhausted_schedule_marks_the_webhook_failed(
    gateway: Gateway, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook").respond_with_data("nope", status=503)
    job_id = await run_job(gateway, httpserver.url_for("/hook"))
    for _ in SCHEDULE:
        await send_all(gateway)
        gateway.clock.advance(max(SCHEDULE) * 1.2)
    assert len(httpserver.log) == len(SCHEDULE)
    assert (await gateway.job(job_id, key=gateway.live_key))["webhookStatus"] == "failed"


async def test_410_stops_retrying(gateway: Gateway, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_data("gone", status=410)
    job_id = await run_job(gateway, httpserver.url_for("/hook"))
    await send_all(gateway)
    gateway.clock.advance(86_400 * 4)
    await send_all(gateway)
    assert len(httpserver.log) == 1
    assert (await gateway.job(job_id, key=gateway.live_key))["webhookStatus"] == "failed"


async def test_redirects_are_not_followed(gateway: Gateway, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_response(
        Response(status=302, headers={"Location": httpserver.url_for("/elsewhere")})
    )
    httpserver.expect_request("/elsewhere").respond_with_data("ok")
    job_id = await run_job(gateway, httpserver.url_for("/hook"))
    await send_all(gateway)
    assert [request.path for request, _ in httpserver.log] == ["/hook"]
    assert (await gateway.job(job_id, key=gateway.live_key))["webhookStatus"] == "pending"


async def test_retry_after_from_the_receiver_is_honoured(
    gateway: Gateway, httpserver: HTTPServer
) -> None:
    httpserver.expect_ordered_request("/hook").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "120"}
    )
    httpserver.expect_ordered_request("/hook").respond_with_data("ok")
    await run_job(gateway, httpserver.url_for("/hook"))
    await send_all(gateway)
    gateway.clock.advance(SCHEDULE[1] * 1.2)  # the schedule alone would retry now
    await send_all(gateway)
    assert len(httpserver.log) == 1
    gateway.clock.advance(120)
    await send_all(gateway)
    assert len(httpserver.log) == 2


async def test_progress_events_are_throttled_to_one_per_second(
    gateway: Gateway, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    gateway.runtime.settings.sandbox_latency_seconds = 0
    job_id = await run_job(
        gateway,
        httpserver.url_for("/hook"),
        events=["progress", "completed"],
        prompt="kite [[latency:3]]",
    )
    await send_all(gateway)
    events = [json.loads(request.get_data())["event"] for request, _ in httpserver.log]
    assert events.count("completed") == 1
    assert 1 <= events.count("progress") <= 4  # 3 s of polling at most one per second
    progress = [
        json.loads(r.get_data())["progress"]
        for r, _ in httpserver.log
        if r.headers["X-Webhook-Event"] == "progress"
    ]
    assert progress == sorted(progress)
    assert (await gateway.job(job_id, key=gateway.live_key))["webhookStatus"] == "delivered"


async def test_a_sender_that_died_mid_delivery_is_replaced(
    gateway: Gateway, httpserver: HTTPServer
) -> None:
    """The first sender claims the delivery and dies; after its lease expires another sends it,
    with the same webhook-id, so a receiver can drop a duplicate."""
    httpserver.expect_request("/hook").respond_with_data("ok")
    job_id = await run_job(gateway, httpserver.url_for("/hook"))
    from imagegate.store import webhooks as store

    async with gateway.runtime.db.transaction() as conn:
        (claimed,) = await store.claim_deliveries(
            conn, owner="dead", token="t-dead", now=gateway.clock.now_ms(), lease_ms=60_000, limit=5
        )
    await send_all(gateway)
    assert httpserver.log == []  # still leased by the dead sender
    gateway.clock.advance(61)
    await send_all(gateway)
    ((request, _),) = httpserver.log
    assert request.headers["webhook-id"] == claimed.id
    assert (await gateway.job(job_id, key=gateway.live_key))["webhookStatus"] == "delivered"


async def test_a_second_sender_never_takes_a_job_whose_delivery_is_in_flight(
    gateway: Gateway, httpserver: HTTPServer
) -> None:
    """Events of one job are sent one at a time even with several senders."""
    from imagegate.store import webhooks as store

    httpserver.expect_request("/hook").respond_with_data("ok")
    job_id = await run_job(
        gateway,
        httpserver.url_for("/hook"),
        events=["progress", "completed"],
        prompt="kite [[latency:3]]",
    )
    now = gateway.clock.now_ms()
    async with gateway.runtime.db.read() as conn:
        pending = [d for d in await store.list_deliveries(conn, job_id) if d.status == "pending"]
    assert len(pending) >= 2
    async with gateway.runtime.db.transaction() as conn:
        (first,) = await store.claim_deliveries(
            conn, owner="a", token="t-a", now=now, lease_ms=60_000, limit=5
        )
    async with gateway.runtime.db.transaction() as conn:
        second = await store.claim_deliveries(
            conn, owner="b", token="t-b", now=now, lease_ms=60_000, limit=5
        )
    assert first.job_id == job_id
    assert second == []


async def test_redeliver_waits_for_an_attempt_in_flight(
    gateway: Gateway, httpserver: HTTPServer
) -> None:
    from imagegate.store import webhooks as store

    httpserver.expect_request("/hook").respond_with_data("ok")
    job_id = await run_job(gateway, httpserver.url_for("/hook"))
    async with gateway.runtime.db.transaction() as conn:
        await store.claim_deliveries(
            conn, owner="a", token="t-a", now=gateway.clock.now_ms(), lease_ms=60_000, limit=5
        )
    path = f"/v2/jobs/{job_id}/webhooks/redeliver"
    headers = gateway.headers(gateway.live_key)
    busy = await gateway.http.post(path, headers=headers)
    assert busy.status_code == 409
    assert "being delivered right now" in busy.json()["error"]
    gateway.clock.advance(61)  # the sender died: its lease runs out
    assert (await gateway.http.post(path, headers=headers)).status_code == 202


async def test_redeliver_requeues_the_last_event(gateway: Gateway, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    job_id = await run_job(gateway, httpserver.url_for("/hook"))
    await send_all(gateway)
    response = await gateway.http.post(
        f"/v2/jobs/{job_id}/webhooks/redeliver", headers=gateway.headers(gateway.live_key)
    )
    assert response.status_code == 202
    assert (await gateway.job(job_id, key=gateway.live_key))["webhookStatus"] == "pending"
    await send_all(gateway)
    assert len(httpserver.log) == 2
    assert len({r.headers["webhook-id"] for r, _ in httpserver.log}) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest",
        "http://[::ffff:192.168.1.1]/x",
        "ftp://example.com/x",
    ],
)
async def test_forbidden_webhook_url_is_400_at_submit(gateway: Gateway, url: str) -> None:
    response = await gateway.submit({**BODY, "webhookUrl": url}, key=gateway.live_key)
    assert response.status_code == 400, response.text
    assert "webhookUrl" in response.json()["details"]
    assert await count_rows(gateway.runtime.db, "jobs") == 0
    assert await gateway.balance() == 1000
