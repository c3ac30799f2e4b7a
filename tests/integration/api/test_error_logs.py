"""Every way a request can fail, made with known secrets, leaves logs free of them in both
formats; an unhandled error is answered 500 and logged once, with a bounded traceback."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest
from fastapi import Request

from imagegate.api.app import create_app
from imagegate.observability.logging import MAX_TRACEBACK_CHARS, flush_logs
from tests.integration.conftest import Gateway, open_gateway

GPT = {"model": "gpt-image-1.5", "prompt": "a red fox", "gptImageParams": {"quality": "low"}}
WRONG_KEY = "ig_live_WrongWrongWrongWrongWrongWrongWrongWrong123"
PROVIDER_KEY = "sk-provider-7c1d9e2f4a6b8c0d"


async def fail_every_way(gateway: Gateway) -> list[int]:
    """Requests that fail in each way a client can provoke; their statuses, in order."""
    app = create_app(gateway.runtime)

    async def boom(request: Request) -> None:
        api_key = request.headers["x-api-key"]  # a local holding the key: never rendered
        raise RuntimeError(f"exploded while serving {request.url} for {api_key}")

    app.add_api_route("/boom", boom, methods=["GET"])
    transport = httpx2.ASGITransport(app=app)
    statuses: list[int] = []
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as http:
        key = {"X-API-Key": gateway.live_key}
        for request in [
            http.build_request("GET", "/v2/jobs", headers={"X-API-Key": WRONG_KEY}),
            http.build_request("GET", "/v2/me", headers={"Authorization": f"Bearer {WRONG_KEY}"}),
            http.build_request("POST", "/v2/images/generate", headers=key, content=b"{nope"),
            http.build_request(
                "POST",
                "/v2/images/generate",
                headers={**key, "Idempotency-Key": "k" * 500},
                json={**GPT, "webhookUrl": f"https://10.0.0.1/hook?token={PROVIDER_KEY}"},
            ),
            http.build_request(
                "POST", "/v2/images/generate", headers=key, json={**GPT, "model": "nope"}
            ),
            http.build_request("GET", "/v2/jobs/not-a-uuid", headers=key),
            http.build_request(
                "GET", "/files/outputs/x.png", params={"expires": "1", "signature": "f" * 64}
            ),
            http.build_request(
                "GET", "/boom", headers={**key, "Authorization": f"Bearer {PROVIDER_KEY}"}
            ),
            http.build_request("GET", "/boom", params={"signature": "a" * 64}, headers=key),
        ]:
            statuses.append((await http.send(request)).status_code)
    flush_logs()
    return statuses


@pytest.mark.parametrize("as_json", [False, True], ids=["console", "json"])
async def test_failing_requests_leave_no_secret_and_one_bounded_traceback_per_error(
    database_url: str,
    tmp_path: Path,
    capture_logs: Callable[[bool], io.StringIO],
    as_json: bool,
) -> None:
    buffer = capture_logs(as_json)
    async with open_gateway(database_url, tmp_path / "data") as gateway:
        statuses = await fail_every_way(gateway)
        secrets = [gateway.live_key, gateway.test_key, WRONG_KEY, PROVIDER_KEY, "a" * 64]

    assert statuses == [401, 401, 400, 400, 400, 400, 403, 500, 500]
    out = buffer.getvalue()
    for secret in secrets:
        assert secret not in out
    if as_json:
        records = [json.loads(line) for line in out.splitlines()]
        errors = [record for record in records if record.get("event") == "api.unhandled"]
        tracebacks = [record["exception"] for record in errors]
    else:
        errors = [line for line in out.splitlines() if "api.unhandled" in line]
        tracebacks = out.split("Traceback (most recent call last):")[1:]
    assert len(errors) == 2, out
    assert len(tracebacks) == 2, out
    for text in tracebacks:
        assert "RuntimeError: exploded while serving http://testserver/boom" in text
        assert len(text) < MAX_TRACEBACK_CHARS + 200
    assert "Exception in ASGI application" not in out  # logged once, by the gateway
