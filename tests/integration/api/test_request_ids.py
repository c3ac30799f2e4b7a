"""``X-Request-Id``: a well-formed one is kept and echoed, anything else replaced; every JSON log
line of a request names it, and every line written while a job is processed or its webhook sent
names the job."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
import structlog
from pytest_httpserver import HTTPServer

from imagegate.api.app import create_app
from imagegate.observability.logging import flush_logs
from tests.integration.conftest import Gateway

BODY = {"model": "gpt-image-1.5", "prompt": "a kite", "gptImageParams": {"quality": "low"}}
FRESH_ID = re.compile(r"[0-9a-f]{32}")

log = structlog.get_logger("imagegate.tests")


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    flush_logs()
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


@pytest.mark.parametrize(
    "sent",
    [
        "0b9d6c4e-2f1a-4c35-9e57-1d2b3c4d5e6f",
        "req_01HZY3K8V4N2",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "a" * 128,
    ],
)
async def test_a_well_formed_request_id_is_echoed(gateway: Gateway, sent: str) -> None:
    response = await gateway.http.get("/healthz", headers={"X-Request-Id": sent})
    assert response.headers["x-request-id"] == sent


@pytest.mark.parametrize(
    "sent",
    ["a" * 129, "two words", 'quote"d', "-leading-dash", "tab\there", "ümlaut", ""],
    ids=["too-long", "space", "quote", "leading-dash", "tab", "non-ascii", "empty"],
)
async def test_a_malformed_request_id_is_replaced(gateway: Gateway, sent: str) -> None:
    response = await gateway.http.get("/healthz", headers=[(b"X-Request-Id", sent.encode())])
    echoed = response.headers["x-request-id"]
    assert FRESH_ID.fullmatch(echoed), echoed


async def test_without_a_request_id_each_response_gets_its_own(gateway: Gateway) -> None:
    first = (await gateway.http.get("/healthz")).headers["x-request-id"]
    second = (await gateway.http.get("/healthz")).headers["x-request-id"]
    assert FRESH_ID.fullmatch(first) and FRESH_ID.fullmatch(second) and first != second


async def test_log_lines_name_the_request_then_the_job(
    gateway: Gateway, httpserver: HTTPServer, capture_logs: Callable[[bool], io.StringIO]
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    app = create_app(gateway.runtime)

    async def boom() -> None:
        log.info("test.inside_the_route")
        raise RuntimeError("exploded")

    app.add_api_route("/boom", boom, methods=["GET"])
    buffer = capture_logs(True)

    # The server's own lines of each request name it: the route's, the error boundary's.
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as http:
        failed = await http.get("/boom", headers={"X-Request-Id": "req-boom"})
        accepted = await http.post(
            "/v2/images/generate",
            json={**BODY, "webhookUrl": httpserver.url_for("/hook")},
            headers={"X-API-Key": gateway.live_key, "X-Request-Id": "req-accepted"},
        )
    assert failed.status_code == 500
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["jobId"]
    during_requests = [line for line in lines(buffer) if line["logger"].startswith("imagegate")]
    events = {line["event"]: line.get("request_id") for line in during_requests}
    assert events["test.inside_the_route"] == "req-boom", during_requests
    assert events["api.unhandled"] == "req-boom", during_requests
    assert all(line.get("request_id") for line in during_requests), during_requests

    # Processing the job and sending its webhook: every line names the job, none a request.
    seen = len(lines(buffer))
    await gateway.drain()
    sender = gateway.runtime.webhook_sender()
    try:
        await sender.drain()
    finally:
        await sender.aclose()
    assert len(httpserver.log) == 1
    during_job = [line for line in lines(buffer)[seen:] if line["logger"].startswith("imagegate")]
    assert {"job.completed", "webhook.attempt"} <= {line["event"] for line in during_job}
    for line in during_job:
        if line["event"].startswith(("job.", "webhook.", "ingest.", "provider.")):
            assert line.get("job_id") == job_id, line
        assert "request_id" not in line, line
