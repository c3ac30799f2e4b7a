"""The outbound guard on the real paths: ``webhookUrl`` at submit, input images in the worker.

These gateways have **no** allow-list (unlike the other integration tests, which allow
127.0.0.0/8 to reach their local receivers), so every address form the guard forbids must be
refused: at submit with a 400 naming ``webhookUrl`` and nothing charged or stored; in the worker
as a failed, refunded job whose error names the rule.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from imagegate.testing.vendors import VendorTransport
from tests.conftest import count_rows
from tests.images import image_bytes
from tests.integration.conftest import Gateway, on_fake_vendors

BODY = {"model": "gpt-image-1.5", "prompt": "a kite", "gptImageParams": {"quality": "low"}}
ROUTES = {"gpt-image-1.5": ["openai:gpt-image-1.5"]}
CREDITS = 1000

# (URL host, the reason the 400 must give)
FORBIDDEN_HOSTS = [
    ("127.0.0.1", "is a loopback address (127.0.0.1)"),
    ("127.1", "is a loopback address (127.0.0.1)"),
    ("2130706433", "is a loopback address (127.0.0.1)"),
    ("0x7f.1", "is a loopback address (127.0.0.1)"),
    ("0.0.0.0", "is an unspecified address (0.0.0.0)"),
    ("10.0.0.5", "is a private address (10.0.0.5)"),
    ("172.16.0.1", "is a private address (172.16.0.1)"),
    ("192.168.1.1", "is a private address (192.168.1.1)"),
    ("100.64.0.1", "is a shared (CGNAT) address (100.64.0.1)"),
    ("169.254.169.254", "is the cloud metadata address (169.254.169.254)"),
    ("169.254.10.1", "is a link-local address (169.254.10.1)"),
    ("224.0.0.1", "is a multicast address (224.0.0.1)"),
    ("[::1]", "is a loopback address (::1)"),
    ("[fd00::1]", "is a private address (fd00::1)"),
    ("[fe80::1]", "is a link-local address (fe80::1)"),
    ("[ff02::1]", "is a multicast address (ff02::1)"),
    ("[::ffff:127.0.0.1]", "is a loopback address embedded in an IPv6 address"),
    ("[::ffff:169.254.169.254]", "is the cloud metadata address embedded in an IPv6 address"),
    ("[::ffff:10.1.2.3]", "is a private address embedded in an IPv6 address"),
    ("[64:ff9b::a00:1]", "is a private address embedded in an IPv6 address"),
]


OpenGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def gateways(database_url: str, tmp_path: Path) -> AsyncIterator[OpenGateway]:
    """Opens gateways on the fake vendors with the given settings; closes them at teardown."""
    async with contextlib.AsyncExitStack() as stack:
        opened = 0

        async def open_one(**settings: Any) -> Gateway:
            nonlocal opened
            values: dict[str, Any] = {"credits": CREDITS, "routes": ROUTES, **settings}
            opened += 1
            data_dir = tmp_path / f"data{opened}"
            gateway = on_fake_vendors(database_url, data_dir, VendorTransport(), **values)
            return await stack.enter_async_context(gateway)

        yield open_one


@pytest.fixture
async def guarded(gateways: OpenGateway) -> Gateway:
    """A gateway with http allowed but no allow-listed network: only public addresses pass."""
    return await gateways(outbound_allow_networks=[])


async def assert_refused(gw: Gateway, url: str, reason: str) -> None:
    response = await gw.submit({**BODY, "webhookUrl": url}, key=gw.live_key)
    assert response.status_code == 400, response.text
    details = response.json()["details"]
    assert list(details) == ["webhookUrl"]
    (message,) = details["webhookUrl"]
    assert reason in message
    assert await count_rows(gw.runtime.db, "jobs") == 0
    assert await count_rows(gw.runtime.db, "webhook_deliveries") == 0
    assert await gw.balance() == CREDITS


@pytest.mark.parametrize(("host", "reason"), FORBIDDEN_HOSTS)
async def test_forbidden_address_forms_are_400_at_submit(
    guarded: Gateway, host: str, reason: str
) -> None:
    await assert_refused(guarded, f"http://{host}:8080/hook", reason)


async def test_a_name_resolving_to_loopback_is_400_at_submit(guarded: Gateway) -> None:
    """``localhost`` is resolved by the system resolver (``/etc/hosts``) and judged by address."""
    await assert_refused(guarded, "http://localhost:9/hook", "resolves to a loopback address")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/hook", "http"),
        ("http://user:pw@example.com/hook", "must not carry a user name or password"),
        ("http://nothing.invalid/hook", "does not resolve"),
    ],
)
async def test_url_rules_are_400_at_submit(guarded: Gateway, url: str, reason: str) -> None:
    await assert_refused(guarded, url, reason)


async def test_https_is_required_unless_http_is_allowed(gateways: OpenGateway) -> None:
    gw = await gateways(outbound_allow_http=False)
    await assert_refused(gw, "http://example.com/hook", "must use https, not 'http'")


async def test_the_allow_list_lets_an_operator_reach_a_private_receiver(
    gateways: OpenGateway,
) -> None:
    """The same loopback URL the guarded gateway refuses is accepted once allow-listed."""
    gw = await gateways(outbound_allow_networks=["127.0.0.0/8"])
    response = await gw.submit({**BODY, "webhookUrl": "http://127.0.0.1:9/hook"}, key=gw.live_key)
    assert response.status_code == 202, response.text


# --- input images: downloaded by the worker through the same guard ------------------------------


async def run_with_input(gw: Gateway, image_url: str) -> dict[str, Any]:
    body = {**BODY, "gptImageParams": {"quality": "low", "input_images": [image_url]}}
    accepted = await gw.submit(body, key=gw.live_key)
    assert accepted.status_code == 202, accepted.text
    await gw.drain()
    return await gw.job(accepted.json()["jobId"], key=gw.live_key)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/x.png", "is the cloud metadata address"),
        ("http://10.0.0.5/in.png", "is a private address (10.0.0.5)"),
        ("http://[::ffff:127.0.0.1]/in.png", "is a loopback address embedded in an IPv6 address"),
        ("http://localhost:9/in.png", "resolves to a loopback address"),
    ],
)
async def test_forbidden_input_image_fails_the_job_and_refunds(
    guarded: Gateway, url: str, reason: str
) -> None:
    job = await run_with_input(guarded, url)
    assert job["status"] == "FAILED", job
    assert reason in job["error"]
    assert job["creditCost"] == 0
    assert await guarded.balance() == CREDITS


async def test_input_image_on_an_allowed_local_server_is_used(
    gateways: OpenGateway, httpserver: HTTPServer
) -> None:
    """The counter-test: the same download path succeeds when the operator allows the address,
    so the refusals above come from the guard and not from a broken download."""
    httpserver.expect_request("/in.png").respond_with_data(
        image_bytes((16, 16), (30, 120, 200)), content_type="image/png"
    )
    gw = await gateways(outbound_allow_networks=["127.0.0.0/8"])
    job = await run_with_input(gw, httpserver.url_for("/in.png"))
    assert job["status"] == "COMPLETED", job
    assert [r.path for r, _ in httpserver.log] == ["/in.png"]


async def test_input_image_redirect_to_metadata_is_not_followed(
    gateways: OpenGateway, httpserver: HTTPServer
) -> None:
    """An allowed server bouncing the download to the metadata address: refused, not followed."""
    httpserver.expect_request("/in.png").respond_with_response(
        Response(status=302, headers={"Location": "http://169.254.169.254/latest/x.png"})
    )
    gw = await gateways(outbound_allow_networks=["127.0.0.0/8"])
    job = await run_with_input(gw, httpserver.url_for("/in.png"))
    assert job["status"] == "FAILED", job
    assert "redirect" in job["error"] and "not followed" in job["error"]
    assert await gw.balance() == CREDITS
    assert [r.path for r, _ in httpserver.log] == ["/in.png"]
