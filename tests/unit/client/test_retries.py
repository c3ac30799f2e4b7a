"""Retries against a real local HTTP server that fails first: which calls are retried, how
long the SDK waits, and that a submit keeps one Idempotency-Key across its attempts."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from imagegate.client import (
    AsyncClient,
    Client,
    ConflictError,
    RateLimitError,
    ServiceUnavailableError,
)
from tests.acceptance.conftest import free_port

JOB = {"id": "j1", "status": "COMPLETED", "model": "flux-2-pro", "progress": 100}


class Script:
    """Answer each request with the next of ``answers``; keep every request seen."""

    def __init__(self, *answers: tuple[int, dict[str, Any], dict[str, str]]) -> None:
        self.answers = list(answers)
        self.seen: list[Request] = []
        self.times: list[float] = []

    def __call__(self, request: Request) -> Response:
        self.seen.append(request)
        self.times.append(time.monotonic())
        status, body, headers = self.answers.pop(0)
        return Response(json.dumps(body), status, headers, content_type="application/json")


def unavailable(retry_after: str = "0") -> tuple[int, dict[str, Any], dict[str, str]]:
    return (
        503,
        {"error": "Service unavailable", "code": "unavailable"},
        {"Retry-After": retry_after},
    )


def test_a_submit_is_retried_after_503_with_the_same_idempotency_key(
    httpserver: HTTPServer,
) -> None:
    script = Script(unavailable(), unavailable(), (202, {"jobId": "j1", "status": "QUEUED"}, {}))
    httpserver.expect_request("/v2/images/generate", method="POST").respond_with_handler(script)
    with Client(httpserver.url_for(""), "k", max_retries=2) as client:
        job = client.images.generate(model="flux-2-pro", prompt="x")
    assert job.id == "j1" and job.status == "QUEUED"
    keys = [request.headers["Idempotency-Key"] for request in script.seen]
    assert len(keys) == 3 and len(set(keys)) == 1
    assert all(json.loads(r.data) == {"model": "flux-2-pro", "prompt": "x"} for r in script.seen)


def test_retry_after_is_waited_out(httpserver: HTTPServer) -> None:
    script = Script(
        (429, {"error": "Too many queued jobs", "code": "rate_limited"}, {"Retry-After": "1"}),
        (200, JOB, {}),
    )
    httpserver.expect_request("/v2/jobs/j1").respond_with_handler(script)
    with Client(httpserver.url_for(""), "k") as client:
        assert client.jobs.get("j1").status == "COMPLETED"
    assert script.times[1] - script.times[0] >= 1.0


def test_retries_run_out_into_the_error(httpserver: HTTPServer) -> None:
    script = Script(unavailable(), unavailable())
    httpserver.expect_request("/v2/jobs/j1").respond_with_handler(script)
    with (
        Client(httpserver.url_for(""), "k", max_retries=1) as client,
        pytest.raises(ServiceUnavailableError) as raised,
    ):
        client.jobs.get("j1")
    assert len(script.seen) == 2 and raised.value.retry_after == 0


def test_a_retry_after_longer_than_the_cap_is_raised_at_once(httpserver: HTTPServer) -> None:
    script = Script((429, {"error": "slow down"}, {"Retry-After": "3600"}))
    httpserver.expect_request("/v2/jobs/j1").respond_with_handler(script)
    with Client(httpserver.url_for(""), "k") as client, pytest.raises(RateLimitError) as raised:
        client.jobs.get("j1")
    assert raised.value.retry_after == 3600 and len(script.seen) == 1


def test_a_call_without_idempotency_is_never_retried(httpserver: HTTPServer) -> None:
    script = Script(unavailable())
    httpserver.expect_request("/v2/jobs/j1/cancel", method="POST").respond_with_handler(script)
    with Client(httpserver.url_for(""), "k") as client, pytest.raises(ServiceUnavailableError):
        client.jobs.cancel("j1")
    assert len(script.seen) == 1


def test_a_client_error_is_never_retried(httpserver: HTTPServer) -> None:
    script = Script((409, {"error": "Idempotency-Key reused", "code": "conflict"}, {}))
    httpserver.expect_request("/v2/images/generate").respond_with_handler(script)
    with Client(httpserver.url_for(""), "k") as client, pytest.raises(ConflictError):
        client.images.generate(model="flux-2-pro", prompt="x", idempotency_key="mine")
    assert [r.headers["Idempotency-Key"] for r in script.seen] == ["mine"]


def test_the_key_goes_to_the_gateway_but_not_to_other_hosts(httpserver: HTTPServer) -> None:
    script = Script((200, JOB, {}))
    httpserver.expect_request("/v2/jobs/j1").respond_with_handler(script)
    image = Script((200, {}, {}))
    httpserver.expect_request("/files/x.png").respond_with_handler(image)
    with Client(httpserver.url_for(""), "secret-key") as client:
        client.jobs.get("j1")
        client.images.download(httpserver.url_for("/files/x.png"))
    assert script.seen[0].headers["X-API-Key"] == "secret-key"
    assert "X-API-Key" not in image.seen[0].headers


async def test_the_async_client_retries_a_submit_with_one_key(httpserver: HTTPServer) -> None:
    script = Script(unavailable(), (202, {"jobId": "j1", "status": "QUEUED"}, {}))
    httpserver.expect_request("/v2/images/generate", method="POST").respond_with_handler(script)
    async with AsyncClient(httpserver.url_for(""), "k") as client:
        job = await client.images.generate(model="flux-2-pro", prompt="x")
    assert job.id == "j1"
    keys = {request.headers["Idempotency-Key"] for request in script.seen}
    assert len(script.seen) == 2 and len(keys) == 1


def test_a_refused_connection_is_retried_until_the_gateway_is_up() -> None:
    port = free_port()
    server = HTTPServer(host="127.0.0.1", port=port)
    script = Script((202, {"jobId": "j1", "status": "QUEUED"}, {}))
    server.expect_request("/v2/images/generate").respond_with_handler(script)
    starter = threading.Timer(0.1, server.start)
    starter.start()
    try:
        with Client(f"http://127.0.0.1:{port}", "k", max_retries=4) as client:
            job = client.images.generate(model="flux-2-pro", prompt="x", idempotency_key="one")
    finally:
        starter.join()
        server.clear()
        if server.is_running():
            server.stop()
    assert job.id == "j1" and [r.headers["Idempotency-Key"] for r in script.seen] == ["one"]
