"""``X-Retention-Days``: a request keeps its outputs shorter or longer, up to the operator cap."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.conftest import count_rows
from tests.integration.conftest import Gateway

BODY = {"model": "gpt-image-1.5", "prompt": "a kite", "gptImageParams": {"quality": "low"}}
DAY = 86_400


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


async def test_a_request_keeps_its_outputs_for_the_days_it_asks(gateway: Gateway) -> None:
    short = (await gateway.submit(BODY, **{"X-Retention-Days": "2"})).json()["jobId"]
    default = (await gateway.submit(BODY)).json()["jobId"]
    await gateway.drain()

    job = await gateway.job(short)
    assert seconds_between(job["completedAt"], job["expiresAt"]) == pytest.approx(2 * DAY, abs=1)
    other = await gateway.job(default)
    assert seconds_between(other["completedAt"], other["expiresAt"]) == pytest.approx(
        30 * DAY, abs=1
    )

    gateway.clock.advance(2 * DAY + 1)
    expired = (await gateway.runtime.sweeper().sweep()).jobs
    assert expired == 1
    assert (await gateway.job(short))["expired"] is True
    assert (await gateway.job(default))["expired"] is False


@pytest.mark.parametrize("value", ["0", "366", "abc", "-1", "1.5"])
async def test_out_of_range_retention_is_400_and_nothing_is_queued(
    gateway: Gateway, value: str
) -> None:
    response = await gateway.submit(BODY, key=gateway.live_key, **{"X-Retention-Days": value})
    assert response.status_code == 400
    assert response.json()["details"] == {
        "X-Retention-Days": ["must be a whole number of days from 1 to 365"]
    }
    assert await count_rows(gateway.runtime.db, "jobs") == 0
    assert await gateway.balance() == 1000
