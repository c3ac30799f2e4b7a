"""An aspect ratio too long for ``int()`` is a 400 naming the field, never a 500."""

from __future__ import annotations

import pytest

from tests.integration.conftest import Gateway

HUGE = "1" * 5000 + ":1"


@pytest.mark.parametrize("ratio", [HUGE, "²:1", "16:0"])
async def test_a_ratio_no_route_can_send_is_refused_naming_the_field(
    gateway: Gateway, ratio: str
) -> None:
    body = {
        "model": "flux-1.1-pro-ultra",
        "prompt": "a lighthouse",
        "fluxParams": {"aspect_ratio": ratio},
    }
    response = await gateway.submit(body, key=gateway.live_key)

    assert response.status_code == 400, response.text
    assert "fluxParams.aspect_ratio" in response.json()["details"]
    assert await gateway.balance() == 1000
