"""Delivery when things go wrong between two steps: DNS rebinding, a sender killed mid-send."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from imagegate.webhooks.delivery import SCHEDULE, WebhookSender
from tests.integration.conftest import SANDBOX_ROUTES, Gateway, open_gateway

BODY = {"model": "gpt-image-1.5", "prompt": "a kite", "gptImageParams": {"quality": "low"}}


@pytest.fixture
async def gateway(database_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with open_gateway(database_url, tmp_path / "data", routes=SANDBOX_ROUTES) as gw:
        yield gw


async def run_job(gw: Gateway, url: str) -> str:
    response = await gw.submit({**BODY, "webhookUrl": url}, key=gw.live_key)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["jobId"]
    await gw.drain()
    return job_id


async def webhook_log(gw: Gateway, job_id: str) -> dict[str, Any]:
    response = await gw.http.get(f"/v2/jobs/{job_id}/webhooks", headers=gw.headers(gw.live_key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- DNS rebinding -----------------------------------------------------------------------------


@pytest.fixture
def receiver_on_127_0_0_2() -> Iterator[HTTPServer]:
    """A receiver on 127.0.0.2 only: ``localhost`` from the system resolver (127.0.0.1) misses it,
    so a request that arrives was dialled to the address the guard's resolver answered."""
    server = HTTPServer(host="127.0.0.2", port=0)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


async def test_rebinding_between_attempts_is_refused_and_the_checked_ip_is_dialled(
    gateway: Gateway, receiver_on_127_0_0_2: HTTPServer
) -> None:
    receiver = receiver_on_127_0_0_2
    receiver.expect_ordered_request("/hook").respond_with_data("boom", status=500)
    receiver.expect_ordered_request("/hook").respond_with_data("ok")
    url = f"http://localhost:{receiver.port}/hook"  # passes at submit: 127.0.0.1 is allow-listed
    job_id = await run_job(gateway, url)

    answers: list[Sequence[str]] = [["127.0.0.2"], ["10.0.0.5"], ["127.0.0.2"]]
    asked: list[str] = []

    async def rebinding_dns(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        return answers[len(asked) - 1]

    runtime = gateway.runtime
    sender = WebhookSender(
        db=runtime.db,
        clock=runtime.clock,
        store=runtime.store,
        url_ttl_seconds=runtime.settings.result_url_ttl_seconds,
        policy=runtime.policy,
        resolver=rebinding_dns,
    )
    try:
        await sender.drain()  # attempt 1: resolves once, dials 127.0.0.2, gets a 500
        assert asked == ["localhost"], "one resolution per attempt: the checked answer is dialled"
        assert len(receiver.log) == 1
        assert receiver.log[0][0].headers["Host"] == f"localhost:{receiver.port}"

        gateway.clock.advance(SCHEDULE[1] * 1.2)
        await sender.drain()  # attempt 2: the name now points into 10/8: refused, nothing sent
        assert len(asked) == 2 and len(receiver.log) == 1

        gateway.clock.advance(SCHEDULE[2] * 1.2)
        await sender.drain()  # attempt 3: public again (here: the allow-listed receiver)
    finally:
        await sender.aclose()

    assert len(receiver.log) == 2
    assert len({r.headers["webhook-id"] for r, _ in receiver.log}) == 1
    assert (await gateway.job(job_id, key=gateway.live_key))["webhookStatus"] == "delivered"
    log = await webhook_log(gateway, job_id)
    (delivery,) = log["deliveries"]
    attempts = delivery["attempts"]
    assert [a["statusCode"] for a in attempts] == [500, None, 200]
    assert attempts[1]["error"] == "blocked: resolves to a private address (10.0.0.5)"


# --- a sender killed between the HTTP exchange and the settle write -------------------------------


async def test_a_sender_killed_mid_delivery_is_replaced_with_the_same_webhook_id(
    gateway: Gateway, httpserver: HTTPServer
) -> None:
    """The receiver got the request; the sender dies before recording the answer. The lease
    runs out, another sender delivers again: a duplicate the receiver can drop by webhook-id."""
    arrived = threading.Event()
    release = threading.Event()
    bodies: list[bytes] = []

    def slow_ok(request: Request) -> Response:
        bodies.append(request.get_data())
        if len(bodies) == 1:
            arrived.set()
            release.wait(10)  # hold the first answer until the sender has been killed
        return Response("ok")

    httpserver.expect_request("/hook", method="POST").respond_with_handler(slow_ok)
    job_id = await run_job(gateway, httpserver.url_for("/hook"))

    doomed = gateway.runtime.webhook_sender()
    task = asyncio.create_task(doomed.drain_once())
    try:
        assert await asyncio.to_thread(arrived.wait, 10), "the first attempt never arrived"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        release.set()
        await doomed.aclose()
    assert task.cancelled()
    job = await gateway.job(job_id, key=gateway.live_key)
    assert job["webhookStatus"] == "pending"
    (delivery,) = (await webhook_log(gateway, job_id))["deliveries"]
    assert delivery["status"] == "pending" and delivery["attempts"] == []

    replacement = gateway.runtime.webhook_sender()
    try:
        await replacement.drain()
        assert len(bodies) == 1, "still leased by the dead sender: nobody sends yet"
        gateway.clock.advance(61)  # the sender's lease is 60 s
        await replacement.drain()
        await replacement.drain()
    finally:
        await replacement.aclose()

    assert len(httpserver.log) == 2
    first, second = (request for request, _ in httpserver.log)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery["id"]
    assert [json.loads(b)["event"] for b in bodies] == ["completed", "completed"]
    assert (await gateway.job(job_id, key=gateway.live_key))["webhookStatus"] == "delivered"
    (delivery,) = (await webhook_log(gateway, job_id))["deliveries"]
    assert delivery["status"] == "delivered"
    assert [a["statusCode"] for a in delivery["attempts"]] == [200]


# --- a receiver slower than the timeout --------------------------------------------------------


async def test_an_answer_after_the_timeout_is_a_failed_attempt(
    gateway: Gateway, httpserver: HTTPServer
) -> None:
    """Success means a 2xx *within* the timeout: a late 200 is retried, not counted."""
    release = threading.Event()

    def late_ok(request: Request) -> Response:
        release.wait(10)  # held until the first attempt has given up: late however slow the host
        return Response("ok")

    httpserver.expect_ordered_request("/hook").respond_with_handler(late_ok)
    httpserver.expect_ordered_request("/hook").respond_with_data("ok")
    job_id = await run_job(gateway, httpserver.url_for("/hook"))
    runtime = gateway.runtime
    sender = WebhookSender(
        db=runtime.db,
        clock=runtime.clock,
        store=runtime.store,
        url_ttl_seconds=runtime.settings.result_url_ttl_seconds,
        policy=runtime.policy,
        timeout=1.0,
    )
    try:
        await sender.drain()
        assert (await gateway.job(job_id, key=gateway.live_key))["webhookStatus"] == "pending"
        release.set()  # the single-threaded receiver sends the late 200, then takes the retry
        gateway.clock.advance(SCHEDULE[1] * 1.2)
        await sender.drain()
    finally:
        await sender.aclose()
    (delivery,) = (await webhook_log(gateway, job_id))["deliveries"]
    assert [(a["statusCode"], a["error"]) for a in delivery["attempts"]] == [
        (None, "no answer within 1 s"),
        (200, None),
    ]
    assert delivery["attempts"][0]["latencyMs"] < 5000  # cut at the timeout, not at the answer
    assert (await gateway.job(job_id, key=gateway.live_key))["webhookStatus"] == "delivered"
