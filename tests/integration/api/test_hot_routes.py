"""The submit, the job read and the OpenAI-compatible generation, served below FastAPI's
routing, answer exactly what FastAPI's routing answers: the same status, body bytes and headers,
for successes and every kind of refusal (no key, a bad key, bad JSON, a rule broken, a NUL, a
body too long, another account's job, an unknown job), and they are counted under their route
templates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from imagegate.api.app import create_app
from imagegate.services import accounts as account_service
from imagegate.types import KeyKind
from tests.integration.conftest import Gateway, open_gateway

BODY = b'{"model":"gpt-image-1.5","prompt":"a kite","gptImageParams":{"quality":"low"}}'
OPENAI_BODY = b'{"model":"gpt-image-1.5","prompt":"a kite","quality":"low","response_format":"url"}'
GENERATIONS = "/v1/images/generations"


@pytest.fixture
async def gateway(database_url: str, tmp_path: Any) -> AsyncIterator[Gateway]:
    async with open_gateway(
        database_url, tmp_path / "data", rate_limit_submit="1000/minute", max_body_bytes=4096
    ) as gw:
        yield gw


@pytest.fixture
async def routed(gateway: Gateway) -> AsyncIterator[httpx2.AsyncClient]:
    """The same gateway with every route served by FastAPI's routing."""
    transport = httpx2.ASGITransport(app=create_app(gateway.runtime, hot_routes=False))
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def same_answer(hot: httpx2.Response, routed: httpx2.Response) -> None:
    assert (hot.status_code, hot.content) == (routed.status_code, routed.content)
    for name in ("ratelimit-remaining", "ratelimit-reset", "ratelimit"):
        hot.headers.pop(name, None)  # the budget is spent by each request
        routed.headers.pop(name, None)
    assert hot.headers.pop("x-request-id") and routed.headers.pop("x-request-id")
    assert hot.headers.multi_items() == routed.headers.multi_items()


async def test_a_submit_answers_as_fastapi_routing_does(
    gateway: Gateway, routed: httpx2.AsyncClient
) -> None:
    cases: list[tuple[dict[str, str], bytes]] = [
        ({}, BODY),
        ({"x-api-key": "ig_test_nope"}, BODY),
        (gateway.headers(), b'{"model":'),
        (gateway.headers(), b'{"model":"gpt-image-1.5","prompt":""}'),
        (gateway.headers(), b'{"model":"no-such-model","prompt":"x"}'),
        (gateway.headers(), b"[]"),
        (gateway.headers(), b""),
        (gateway.headers(**{"X-Bad": "a\x00b"}), BODY),
        (gateway.headers(), b"{" + b" " * 5000 + b"}"),
        (gateway.headers(**{"X-Retention-Days": "forever"}), BODY),
    ]
    for headers, body in cases:
        hot = await gateway.http.post("/v2/images/generate", headers=headers, content=body)
        plain = await routed.post("/v2/images/generate", headers=headers, content=body)
        assert hot.status_code != 500, hot.text
        same_answer(hot, plain)
    accepted = await gateway.http.post(
        "/v2/images/generate", headers=gateway.headers(), content=BODY
    )
    assert accepted.status_code == 202
    assert accepted.headers["location"] == f"/v2/jobs/{accepted.json()['jobId']}"
    assert "ratelimit-remaining" in accepted.headers


async def test_an_idempotent_replay_answers_as_fastapi_routing_does(
    gateway: Gateway, routed: httpx2.AsyncClient
) -> None:
    headers = gateway.headers(**{"Idempotency-Key": "kite-1"})
    first = await routed.post("/v2/images/generate", headers=headers, content=BODY)
    hot = await gateway.http.post("/v2/images/generate", headers=headers, content=BODY)
    plain = await routed.post("/v2/images/generate", headers=headers, content=BODY)
    assert hot.headers["idempotent-replayed"] == "true"
    assert hot.json()["jobId"] == first.json()["jobId"]
    same_answer(hot, plain)
    conflict = b'{"model":"gpt-image-1.5","prompt":"another kite"}'
    hot = await gateway.http.post("/v2/images/generate", headers=headers, content=conflict)
    plain = await routed.post("/v2/images/generate", headers=headers, content=conflict)
    assert hot.status_code == 409
    same_answer(hot, plain)


async def test_a_job_read_answers_as_fastapi_routing_does(
    gateway: Gateway, routed: httpx2.AsyncClient
) -> None:
    job_id = (await gateway.submit({"model": "gpt-image-1.5", "prompt": "a kite"})).json()["jobId"]
    await gateway.drain()
    rt = gateway.runtime
    other = await account_service.create_account(rt.db, gateway.clock, "other")
    stranger = await account_service.create_key(rt.db, gateway.clock, other.id, KeyKind.LIVE, "k")
    cases = [
        (f"/v2/jobs/{job_id}", gateway.headers()),
        (f"/v2/jobs/{job_id}", {"x-api-key": stranger.secret}),
        (f"/v2/jobs/{job_id}", {}),
        (f"/v2/jobs/{job_id}", {"x-api-key": "ig_test_nope"}),
        ("/v2/jobs/not-a-job", gateway.headers()),
        ("/v2/jobs/0192f4a8-7c1e-7b3a-9d2e-5f6a7b8c9d0e", gateway.headers()),
        (f"/v2/jobs/{job_id}", gateway.headers(**{"X-Bad": "\x00"})),
    ]
    for path, headers in cases:
        hot = await gateway.http.get(path, headers=headers)
        plain = await routed.get(path, headers=headers)
        assert hot.status_code != 500, hot.text
        same_answer(hot, plain)
    assert (await gateway.http.get(f"/v2/jobs/{job_id}", headers=gateway.headers())).json()[
        "status"
    ] == "COMPLETED"


async def test_an_openai_generation_refused_answers_as_fastapi_routing_does(
    gateway: Gateway, routed: httpx2.AsyncClient
) -> None:
    cases: list[tuple[dict[str, str], bytes]] = [
        ({}, OPENAI_BODY),
        ({"authorization": "Bearer ig_test_nope"}, OPENAI_BODY),
        (gateway.headers(), b'{"model":'),
        (gateway.headers(), b"[]"),
        (gateway.headers(), b'{"model":"no-such-model","prompt":"x"}'),
        (gateway.headers(), b'{"model":"gpt-image-1.5","prompt":"x","size":"7x"}'),
        (gateway.headers(), b'{"model":"gpt-image-1.5","prompt":"x","colour":"red"}'),
        (gateway.headers(**{"X-Bad": "a\x00b"}), OPENAI_BODY),
        (gateway.headers(), b"{" + b" " * 5000 + b"}"),
    ]
    for headers, body in cases:
        hot = await gateway.http.post(GENERATIONS, headers=headers, content=body)
        plain = await routed.post(GENERATIONS, headers=headers, content=body)
        assert 400 <= hot.status_code < 500, hot.text
        same_answer(hot, plain)


async def generated(gateway: Gateway, http: httpx2.AsyncClient, key: str) -> httpx2.Response:
    """A ``/v1`` generation with ``Idempotency-Key: key``, its job run by a worker meanwhile."""
    headers = gateway.headers(**{"Idempotency-Key": key})
    call = asyncio.ensure_future(http.post(GENERATIONS, headers=headers, content=OPENAI_BODY))
    while not call.done():
        await gateway.drain(rounds=5)
        await asyncio.sleep(0.01)
    return await call


async def test_an_openai_generation_reads_its_idempotency_key_below_fastapi_routing(
    gateway: Gateway, routed: httpx2.AsyncClient
) -> None:
    hot = await generated(gateway, gateway.http, "kite-1")
    plain = await generated(gateway, routed, "kite-1")
    other = await generated(gateway, gateway.http, "kite-2")

    assert hot.status_code == plain.status_code == other.status_code == 200
    urls = [[image["url"].split("?")[0] for image in r.json()["data"]] for r in (hot, plain, other)]
    assert urls[0] == urls[1] != urls[2]


async def test_hot_routes_are_counted_under_their_templates(gateway: Gateway) -> None:
    job_id = (await gateway.submit({"model": "gpt-image-1.5", "prompt": "a kite"})).json()["jobId"]
    await gateway.http.get(f"/v2/jobs/{job_id}", headers=gateway.headers())
    metrics = (await gateway.http.get("/metrics")).text
    assert 'route="/v2/images/generate",status="202"' in metrics
    assert 'route="/v2/jobs/{id}",status="200"' in metrics
    await gateway.http.post(GENERATIONS, headers=gateway.headers(), content=b"[]")
    metrics = (await gateway.http.get("/metrics")).text
    assert 'route="/v1/images/generations",status="400"' in metrics
    assert "/v2/jobs/" + job_id not in metrics
