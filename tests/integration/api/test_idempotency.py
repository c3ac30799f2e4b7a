"""Idempotency-Key: one job per key and body, whatever the concurrency."""

from __future__ import annotations

import asyncio

from tests.conftest import count_rows
from tests.integration.conftest import Gateway

BODY = {"model": "gpt-image-1.5", "prompt": "a lighthouse", "gptImageParams": {"quality": "low"}}


async def test_fifty_concurrent_identical_requests_make_one_job(gateway: Gateway) -> None:
    responses = await asyncio.gather(
        *(
            gateway.submit(BODY, key=gateway.live_key, **{"Idempotency-Key": "k-1"})
            for _ in range(50)
        )
    )

    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["jobId"] for r in responses}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 49
    assert await count_rows(gateway.runtime.db, "jobs") == 1
    assert await gateway.balance() == 1000 - 4


async def test_replay_returns_the_current_status(gateway: Gateway) -> None:
    first = await gateway.submit(BODY, **{"Idempotency-Key": "k-2"})
    await gateway.drain()
    replay = await gateway.submit(BODY, **{"Idempotency-Key": "k-2"})

    assert replay.status_code == 202
    assert replay.json() == {"jobId": first.json()["jobId"], "status": "COMPLETED"}
    assert replay.headers["Idempotent-Replayed"] == "true"


async def test_same_body_with_keys_in_another_order_is_a_replay(gateway: Gateway) -> None:
    first = await gateway.submit(BODY, **{"Idempotency-Key": "k-3"})
    reordered = dict(reversed(list(BODY.items())))
    second = await gateway.submit(reordered, **{"Idempotency-Key": "k-3"})
    assert second.json()["jobId"] == first.json()["jobId"]


async def test_same_key_with_a_different_body_is_409(gateway: Gateway) -> None:
    await gateway.submit(BODY, key=gateway.live_key, **{"Idempotency-Key": "k-4"})
    responses = await asyncio.gather(
        *(
            gateway.submit(
                {**BODY, "prompt": f"other {n}"}, key=gateway.live_key, **{"Idempotency-Key": "k-4"}
            )
            for n in range(10)
        )
    )

    assert {r.status_code for r in responses} == {409}
    assert responses[0].json()["code"] == "idempotency_key_reused"
    assert await count_rows(gateway.runtime.db, "jobs") == 1
    assert await gateway.balance() == 996


async def test_keys_expire_after_the_ttl(gateway: Gateway) -> None:
    first = await gateway.submit(BODY, **{"Idempotency-Key": "k-5"})
    gateway.clock.advance(24 * 3600 + 1)
    second = await gateway.submit(BODY, **{"Idempotency-Key": "k-5"})
    assert second.status_code == 202
    assert second.json()["jobId"] != first.json()["jobId"]


async def test_keys_are_scoped_to_the_account(gateway: Gateway) -> None:
    from imagegate.services import accounts as account_service
    from imagegate.types import KeyKind

    rt = gateway.runtime
    other = await account_service.create_account(rt.db, gateway.clock, "other")
    key = await account_service.create_key(rt.db, gateway.clock, other.id, KeyKind.TEST, "t")
    first = await gateway.submit(BODY, **{"Idempotency-Key": "shared"})
    second = await gateway.submit(BODY, key=key.secret, **{"Idempotency-Key": "shared"})
    assert second.json()["jobId"] != first.json()["jobId"]


async def test_overlong_key_is_400(gateway: Gateway) -> None:
    response = await gateway.submit(BODY, **{"Idempotency-Key": "k" * 256})
    assert response.status_code == 400
    assert response.json()["details"] == {"Idempotency-Key": ["must be 1 to 255 characters"]}
