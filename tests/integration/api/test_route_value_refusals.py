"""A value no route of the model can send is a 400 at submit naming the field and the allowed
values, and nothing is charged; a value one route can send is accepted (which route takes it is
pinned in ``tests/integration/providers/test_route_skipping.py``)."""

from __future__ import annotations

import pytest

from tests.integration.conftest import Gateway


@pytest.mark.parametrize(
    ("model", "key", "ratio", "allowed"),
    [
        ("flux-1.1-pro-ultra", "fluxParams", "32:9", "must be between 21:9 and 9:21"),
        ("ideogram-v2", "ideogramParams", "21:9", "must be one of"),
        ("ideogram-v3-turbo", "ideogramParams", "21:9", "must be one of"),
    ],
)
async def test_a_ratio_the_vendor_cannot_take_is_a_400_naming_the_allowed_values(
    gateway: Gateway, model: str, key: str, ratio: str, allowed: str
) -> None:
    body = {"model": model, "prompt": "a lighthouse", key: {"aspect_ratio": ratio}}
    response = await gateway.submit(body, key=gateway.live_key)

    assert response.status_code == 400, response.text
    [message] = response.json()["details"][f"{key}.aspect_ratio"]
    assert allowed in message and model in message
    if allowed == "must be one of":
        assert "16:9" in message and ratio not in message
    assert await gateway.balance() == 1000


async def test_a_ratio_only_the_vendor_route_takes_is_accepted(gateway: Gateway) -> None:
    body = {"model": "flux-1.1-pro-ultra", "prompt": "a lighthouse",
            "fluxParams": {"aspect_ratio": "7:5"}}  # fmt: skip
    response = await gateway.submit(body, key=gateway.test_key)

    assert response.status_code == 202, response.text
