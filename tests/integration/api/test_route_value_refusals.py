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


@pytest.mark.parametrize("model", ["ideogram-v4-balanced", "ideogram-v4-turbo"])
async def test_an_ideogram_4_ratio_with_no_resolution_of_that_shape_is_a_400(
    gateway: Gateway, model: str
) -> None:
    """Neither 4.0 upstream takes ``aspect_ratio``: Replicate's resolutions draw 13 of the 15
    Ideogram ratios exactly, so those are sent as a resolution and ``1:3``/``3:1`` are refused."""
    body = {"model": model, "prompt": "a lighthouse", "ideogramParams": {"aspect_ratio": "1:3"}}
    response = await gateway.submit(body, key=gateway.live_key)

    assert response.status_code == 400, response.text
    [message] = response.json()["details"]["ideogramParams.aspect_ratio"]
    assert message.startswith("must be one of") and model in message
    assert "16:9" in message and "1:3" not in message and "3:1" not in message
    assert await gateway.balance() == 1000


UNSENT = "is not supported by this model's upstream"


@pytest.mark.parametrize(
    ("model", "params", "field", "rule"),
    [
        ("ideogram-v4-balanced", {"style_type": "Design"}, "style_type", UNSENT),
        # Ideogram's route takes the seed and Replicate's the ratio; no route takes both
        ("ideogram-v4-balanced", {"aspect_ratio": "16:9", "seed": 7}, "aspect_ratio", UNSENT),
        ("ideogram-v4-turbo", {"seed": 7}, "seed", UNSENT),
        ("ideogram-v4-quality", {"magic_prompt_option": "Off"}, "magic_prompt_option",
         "must be one of Auto, On"),
    ],
)  # fmt: skip
async def test_an_ideogram_4_param_no_4_0_upstream_takes_is_a_400_naming_it(
    gateway: Gateway, model: str, params: dict[str, object], field: str, rule: str
) -> None:
    body = {"model": model, "prompt": "a lighthouse", "ideogramParams": params}
    response = await gateway.submit(body, key=gateway.live_key)

    assert response.status_code == 400, response.text
    assert response.json()["details"] == {f"ideogramParams.{field}": [f"{rule} for {model}"]}
    assert await gateway.balance() == 1000


async def test_an_ideogram_4_ratio_of_a_replicate_resolution_is_accepted(gateway: Gateway) -> None:
    body = {"model": "ideogram-v4-turbo", "prompt": "a lighthouse",
            "ideogramParams": {"aspect_ratio": "16:9"}}  # fmt: skip
    response = await gateway.submit(body, key=gateway.test_key)

    assert response.status_code == 202, response.text
