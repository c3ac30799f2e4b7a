"""Every documented error status with its exact body; bad input never charges or queues."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from imagegate.services import accounts as account_service
from imagegate.types import KeyKind
from tests.conftest import count_rows
from tests.integration.conftest import Gateway, open_gateway

GPT = {"model": "gpt-image-1.5", "prompt": "a red fox", "gptImageParams": {"quality": "low"}}


async def test_missing_key_is_401(gateway: Gateway) -> None:
    response = await gateway.http.get("/v2/jobs")
    assert response.status_code == 401
    assert response.json() == {"error": "API key is required", "code": "api_key_required"}


async def test_unknown_key_is_401(gateway: Gateway) -> None:
    response = await gateway.http.get("/v2/jobs", headers={"X-API-Key": "ig_live_nope"})
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid API key", "code": "api_key_invalid"}


async def test_bearer_authorization_is_accepted(gateway: Gateway) -> None:
    response = await gateway.http.get(
        "/v2/me", headers={"Authorization": f"Bearer {gateway.live_key}"}
    )
    assert response.status_code == 200
    assert response.json()["team"]["id"] == gateway.account_id


async def test_revoked_key_is_401_at_once_and_inactive_key_is_403(gateway: Gateway) -> None:
    rt = gateway.runtime
    extra = await account_service.create_key(
        rt.db, gateway.clock, gateway.account_id, KeyKind.LIVE, "x"
    )
    assert (
        await gateway.http.get("/v2/me", headers={"X-API-Key": extra.secret})
    ).status_code == 200

    await account_service.set_key_status(rt.db, gateway.clock, extra.row.id, "inactive")
    inactive = await gateway.http.get("/v2/me", headers={"X-API-Key": extra.secret})
    assert inactive.status_code == 403
    assert inactive.json() == {"error": "API key is inactive", "code": "api_key_inactive"}

    await account_service.set_key_status(rt.db, gateway.clock, extra.row.prefix, "revoked")
    revoked = await gateway.http.get("/v2/me", headers={"X-API-Key": extra.secret})
    assert revoked.status_code == 401
    assert revoked.json()["error"] == "Invalid API key"


async def test_insufficient_credits_is_402_with_amounts(gateway: Gateway) -> None:
    body = {**GPT, "gptImageParams": {"quality": "high", "number_of_images": 10}}  # 240 credits
    await account_service.grant_credits(gateway.runtime.db, gateway.clock, gateway.account_id, -900)

    response = await gateway.submit(body, key=gateway.live_key)

    assert response.status_code == 402
    assert response.json() == {
        "error": "Insufficient credits",
        "code": "insufficient_credits",
        "creditsRequired": 240,
        "creditsAvailable": 100,
    }
    assert await count_rows(gateway.runtime.db, "jobs") == 0
    assert await gateway.balance() == 100


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        (b"{not json", "body", "is not valid JSON"),
        (b"[1, 2]", "body", "must be a JSON object"),
        (b'{"prompt": "x"}', "model", "is required"),
        (b'{"model": 5, "prompt": "x"}', "model", "must be a string"),
        (b'{"model": "nope-1", "prompt": "x"}', "model", "unknown model 'nope-1'"),
        (b'{"model": "gpt-image-1.5", "prompt": ""}', "prompt", "must not be empty"),
        (b'{"model": "gpt-image-1.5"}', "prompt", "is required"),
        (b'{"model": "gpt-image-1.5", "prompt": 7}', "prompt", "must be a string"),
        (b'{"model": "gpt-image-1.5", "prompt": "x", "colour": "red"}', "colour", "unknown field"),
        (
            b'{"model": "gpt-image-1.5", "prompt": "x", "midjourneyParams": {}}',
            "midjourneyParams",
            "is not a parameter of gpt-image-1.5 (use gptImageParams)",
        ),
        (
            b'{"model": "gpt-image-1.5", "prompt": "x", '
            b'"gptImageParams": {"number_of_images": "2"}}',
            "gptImageParams.number_of_images",
            "must be an integer",
        ),
        (
            b'{"model": "gpt-image-1.5", "prompt": "x", '
            b'"gptImageParams": {"number_of_images": 11}}',
            "gptImageParams.number_of_images",
            "must be ≤ 10",
        ),
        (
            b'{"model": "gpt-image-1.5", "prompt": "x", "webhookEvents": []}',
            "webhookEvents",
            "must have at least 1 item",
        ),
    ],
)
async def test_bad_bodies_are_400_naming_the_path_and_charge_nothing(
    gateway: Gateway, raw: bytes, path: str, message: str
) -> None:
    response = await gateway.http.post(
        "/v2/images/generate",
        content=raw,
        headers=gateway.headers(gateway.live_key, **{"Content-Type": "application/json"}),
    )

    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "validation_failed"
    assert any(message in m for m in body["details"][path]), body
    assert await count_rows(gateway.runtime.db, "jobs") == 0
    assert await gateway.balance() == 1000


@pytest.mark.parametrize("length", [2001, 5000])
async def test_prompt_over_2000_characters_is_400(gateway: Gateway, length: int) -> None:
    response = await gateway.submit({**GPT, "prompt": "a" * length}, key=gateway.live_key)
    assert response.status_code == 400
    assert response.json()["details"] == {"prompt": ["must be at most 2000 characters"]}


async def test_prompt_of_exactly_2000_characters_is_accepted(gateway: Gateway) -> None:
    response = await gateway.submit({**GPT, "prompt": "a" * 2000}, key=gateway.live_key)
    assert response.status_code == 202


async def test_oversized_body_is_413(gateway: Gateway) -> None:
    body = {**GPT, "prompt": "x" * 2_000_000}
    response = await gateway.submit(body, key=gateway.live_key)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert await count_rows(gateway.runtime.db, "jobs") == 0


async def test_chunked_oversized_body_is_413(gateway: Gateway) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"x" * 50_000

    response = await gateway.http.post(
        "/v2/images/generate", content=chunks(), headers=gateway.headers(gateway.live_key)
    )
    assert response.status_code == 413


@pytest.mark.parametrize("path", ["/v2/jobs/not-a-uuid", "/v2/jobs/123"])
async def test_non_uuid_job_id_is_400(gateway: Gateway, path: str) -> None:
    response = await gateway.http.get(path, headers=gateway.headers())
    assert response.status_code == 400
    assert response.json()["details"] == {"id": ["must be a UUID"]}


async def test_unknown_job_is_404(gateway: Gateway) -> None:
    response = await gateway.http.get(
        "/v2/jobs/0192f1a4-0000-7000-8000-000000000000", headers=gateway.headers()
    )
    assert response.status_code == 404
    assert response.json() == {"error": "Job not found", "code": "not_found"}


async def test_another_accounts_job_is_404(gateway: Gateway) -> None:
    accepted = (await gateway.submit(GPT)).json()
    rt = gateway.runtime
    other = await account_service.create_account(rt.db, gateway.clock, "other")
    key = await account_service.create_key(rt.db, gateway.clock, other.id, KeyKind.LIVE, "k")

    response = await gateway.http.get(
        f"/v2/jobs/{accepted['jobId']}", headers={"X-API-Key": key.secret}
    )

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("status=DONE", "status"),
        ("cursor=%%%", "cursor"),
        ("search=abc", "search"),
        ("include_models=yes", "include_models"),
    ],
)
async def test_bad_list_queries_are_400(gateway: Gateway, query: str, path: str) -> None:
    response = await gateway.http.get(f"/v2/jobs?{query}", headers=gateway.headers())
    assert response.status_code == 400, response.text
    assert path in response.json()["details"]


async def test_queued_job_cap_is_429_with_retry_after(database_url: str, tmp_path: Path) -> None:
    async with open_gateway(database_url, tmp_path, max_queued_jobs_per_account=2) as gw:
        assert (await gw.submit(GPT)).status_code == 202
        assert (await gw.submit(GPT)).status_code == 202
        response = await gw.submit(GPT)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "5"
        assert response.json()["code"] == "rate_limited"


async def test_database_down_is_503_with_retry_after(tmp_path: Path) -> None:
    down = "postgresql+psycopg://postgres@127.0.0.1:9/nowhere"
    from imagegate.api.app import create_app
    from imagegate.runtime import build_runtime
    from tests.conftest import make_settings

    runtime = build_runtime(make_settings(down, tmp_path))
    transport = httpx2.ASGITransport(app=create_app(runtime))
    async with httpx2.AsyncClient(transport=transport, base_url="http://t") as http:
        submit = await http.post(
            "/v2/images/generate", json=GPT, headers={"X-API-Key": "ig_live_x"}
        )
        ready = await http.get("/readyz")
        alive = await http.get("/healthz")
    await runtime.aclose()

    assert submit.status_code == 503
    assert submit.headers["Retry-After"] == "5"
    assert submit.json() == {"error": "Service unavailable", "code": "service_unavailable"}
    assert ready.status_code == 503
    assert alive.status_code == 200


async def test_unknown_route_is_404_json(gateway: Gateway) -> None:
    response = await gateway.http.get("/v2/nothing")
    assert response.status_code == 404
    assert "error" in response.json()
