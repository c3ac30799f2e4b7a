"""``imagegate webhooks secret``: the real command shows and rotates the secret deliveries use."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.integration.conftest import SANDBOX_ROUTES, Gateway, open_gateway

BODY = {"model": "gpt-image-1.5", "prompt": "a kite", "gptImageParams": {"quality": "low"}}
IMAGEGATE = Path(sys.executable).with_name("imagegate")


@pytest.fixture
async def gateway(database_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with open_gateway(database_url, tmp_path / "data", routes=SANDBOX_ROUTES) as gw:
        yield gw


def cli(gw: Gateway, tmp_path: Path, *args: str) -> list[str]:
    """Run the installed ``imagegate`` against the gateway's database; its output lines."""
    env = {
        **os.environ,
        "IMAGEGATE_DATABASE_URL": gw.runtime.settings.database_url,
        "IMAGEGATE_DATA_DIR": str(tmp_path / "cli-data"),
        "IMAGEGATE_CONFIG_FILE": str(tmp_path / "absent.toml"),
        "COLUMNS": "300",  # rich must not wrap the secret
    }
    done = subprocess.run(
        [str(IMAGEGATE), "webhooks", "secret", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()


async def deliver_one(gw: Gateway, server: HTTPServer) -> tuple[bytes, dict[str, str]]:
    server.clear_log()
    accepted = await gw.submit({**BODY, "webhookUrl": server.url_for("/hook")}, key=gw.live_key)
    assert accepted.status_code == 202, accepted.text
    await gw.drain()
    sender = gw.runtime.webhook_sender()
    try:
        await sender.drain()
    finally:
        await sender.aclose()
    ((request, _),) = server.log
    return request.get_data(), dict(request.headers)


async def test_show_and_rotate_the_secret_deliveries_are_signed_with(
    gateway: Gateway, httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    (shown,) = cli(gateway, tmp_path)
    assert shown.startswith("whsec_")
    body, headers = await deliver_one(gateway, httpserver)
    Webhook(shown).verify(body, headers)

    rotated = cli(gateway, tmp_path, "--rotate", "--account", gateway.account_id)
    new = rotated[0]
    assert new.startswith("whsec_") and new != shown
    assert rotated[1] == f"(previous secret still signing: {shown})"
    assert cli(gateway, tmp_path)[0] == new

    body, headers = await deliver_one(gateway, httpserver)
    Webhook(new).verify(body, headers)
    Webhook(shown).verify(body, headers)  # still signing until the next rotation

    cli(gateway, tmp_path, "--rotate")
    body, headers = await deliver_one(gateway, httpserver)
    with pytest.raises(WebhookVerificationError):
        Webhook(shown).verify(body, headers)
