"""``Prefer: wait=N`` on a submit: 200 and the finished job when it ends in time, else 202."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx2

from tests.integration.conftest import Gateway

BODY = {"model": "gpt-image-1.5", "prompt": "a lighthouse [[latency:2]]"}
GRID = {"model": "midjourney", "prompt": "a castle", "midjourneyParams": {"aspect_ratio": "1:1"}}
ACTION = "/v2/images/midjourney/action"


async def answered_while_it_runs(gateway: Gateway, sending: Any) -> httpx2.Response:
    """Send a waiting submit, run the queue meanwhile, and return the submit's answer."""
    task: asyncio.Task[httpx2.Response] = asyncio.create_task(sending)
    for _ in range(100):
        await asyncio.sleep(0.05)
        await gateway.drain()
        if task.done():
            break
    return await asyncio.wait_for(task, 10)


async def test_a_job_finished_within_the_wait_is_answered_200_with_the_job(
    gateway: Gateway,
) -> None:
    response = await answered_while_it_runs(gateway, gateway.submit(BODY, Prefer="wait=10"))

    assert response.status_code == 200, response.text
    assert response.headers["Preference-Applied"] == "wait=10"
    body = response.json()
    assert body["status"] == "COMPLETED"
    assert body == await gateway.job(body["id"])
    assert response.headers["Location"] == f"/v2/jobs/{body['id']}"


async def test_a_job_still_running_when_the_wait_ends_is_answered_202(gateway: Gateway) -> None:
    started = time.monotonic()
    response = await gateway.submit(BODY, Prefer="respond-async, wait=1")

    assert 1 <= time.monotonic() - started < 5
    assert response.status_code == 202
    assert response.headers["Preference-Applied"] == "wait=1"
    assert response.json() == {"jobId": response.json()["jobId"], "status": "QUEUED"}


async def test_a_wait_over_sixty_seconds_is_clamped_to_sixty(gateway: Gateway) -> None:
    response = await answered_while_it_runs(gateway, gateway.submit(BODY, Prefer="wait=3600"))

    assert response.status_code == 200
    assert response.headers["Preference-Applied"] == "wait=60"


async def test_without_prefer_wait_the_answer_is_202_at_once(gateway: Gateway) -> None:
    response = await gateway.submit(BODY, Prefer="return=minimal")

    assert response.status_code == 202
    assert "Preference-Applied" not in response.headers


async def test_an_idempotent_replay_of_a_finished_job_is_answered_200(gateway: Gateway) -> None:
    first = await gateway.submit(BODY, **{"Idempotency-Key": "k-1"})
    await gateway.drain()

    replay = await gateway.submit(BODY, Prefer="wait=5", **{"Idempotency-Key": "k-1"})

    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.headers["Preference-Applied"] == "wait=5"
    assert replay.json()["id"] == first.json()["jobId"]
    assert replay.json()["status"] == "COMPLETED"


async def test_a_midjourney_action_honours_prefer_wait(gateway: Gateway) -> None:
    grid = (await gateway.submit(GRID)).json()["jobId"]
    await gateway.drain()
    body = {"action": "upsample", "parentJobId": grid, "index": 2}
    headers = gateway.headers(Prefer="wait=10")

    response = await answered_while_it_runs(
        gateway, gateway.http.post(ACTION, json=body, headers=headers)
    )
    slow = await gateway.http.post(ACTION, json=body, headers=gateway.headers(Prefer="wait=0"))

    assert response.status_code == 200, response.text
    assert response.headers["Preference-Applied"] == "wait=10"
    assert response.json()["status"] == "COMPLETED"
    assert response.json()["id"] != grid
    assert slow.status_code == 202
    assert slow.headers["Preference-Applied"] == "wait=0"
