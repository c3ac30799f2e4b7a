"""``imagegate keys create --rate/--models``, ``keys limit`` and ``accounts limits``: the real
commands set limits that the next request obeys."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.conftest import SANDBOX_ROUTES, Gateway, open_gateway
from tests.integration.limits.conftest import GPT, MIDJOURNEY

IMAGEGATE = Path(sys.executable).with_name("imagegate")


@pytest.fixture
async def gateway(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with open_gateway(
        sqlite_url, tmp_path / "data", routes=SANDBOX_ROUTES, rate_limit_submit="300/minute"
    ) as gw:
        yield gw


def cli(gw: Gateway, tmp_path: Path, *args: str, status: int = 0) -> str:
    """Run the installed ``imagegate`` against the gateway's database; its output."""
    env = {
        **os.environ,
        "IMAGEGATE_DATABASE_URL": gw.runtime.settings.database_url,
        "IMAGEGATE_DATA_DIR": str(tmp_path / "cli-data"),
        "IMAGEGATE_CONFIG_FILE": str(tmp_path / "absent.toml"),
        "COLUMNS": "300",
    }
    done = subprocess.run(
        [str(IMAGEGATE), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == status, done.stdout + done.stderr
    return done.stdout


async def test_a_key_created_with_a_rate_and_models_is_held_to_them(
    gateway: Gateway, tmp_path: Path
) -> None:
    gw = gateway
    out = cli(
        gw, tmp_path, "keys", "create", "--name", "mj", "--rate", "2/minute",
        "--models", "midjourney", "-a", gw.account_id,
    )  # fmt: skip
    secret = out.strip().splitlines()[-1]

    assert (await gw.submit(GPT, key=secret)).status_code == 403
    assert (await gw.submit(MIDJOURNEY, key=secret)).status_code == 202
    assert (await gw.submit(MIDJOURNEY, key=secret)).status_code == 429

    changed = cli(gw, tmp_path, "keys", "limit", secret, "--rate", "default", "--models", "all")
    assert "rate default" in changed and "models all" in changed
    allowed = await gw.submit(GPT, key=secret)
    assert allowed.status_code == 202
    assert allowed.headers["RateLimit-Limit"] == "300"

    listed = cli(gw, tmp_path, "keys", "list", "-a", gw.account_id)
    assert "default" in listed


async def test_bad_rates_and_unknown_models_are_named(gateway: Gateway, tmp_path: Path) -> None:
    gw = gateway
    bad_rate = cli(gw, tmp_path, "keys", "limit", gw.test_key, "--rate", "5/fortnight", status=1)
    assert "5/fortnight" in bad_rate
    unknown = cli(gw, tmp_path, "keys", "limit", gw.test_key, "--models", "flux-9", status=1)
    assert "unknown model 'flux-9'" in unknown
    assert (await gw.submit(GPT)).status_code == 202


async def test_account_caps_are_set_shown_and_lifted(gateway: Gateway, tmp_path: Path) -> None:
    gw = gateway
    out = cli(
        gw, tmp_path, "accounts", "limits", "-a", gw.account_id,
        "--concurrent-jobs", "1", "--daily-spend", "50",
    )  # fmt: skip
    assert "concurrent jobs 1, daily spend 50 credits" in out

    assert (await gw.submit(GPT, key=gw.live_key)).status_code == 202
    refused = await gw.submit(GPT, key=gw.live_key)
    assert refused.status_code == 429
    assert refused.json()["code"] == "concurrent_jobs_limit"

    lifted = cli(
        gw, tmp_path, "accounts", "limits", "-a", gw.account_id, "--concurrent-jobs", "none"
    )
    assert "concurrent jobs no cap, daily spend 50 credits" in lifted
    assert (await gw.submit(GPT, key=gw.live_key)).status_code == 202
    shown = cli(gw, tmp_path, "accounts", "limits", "-a", gw.account_id)
    assert "concurrent jobs no cap" in shown

    bad = cli(
        gw, tmp_path, "accounts", "limits", "-a", gw.account_id, "--daily-spend", "-3", status=1
    )
    assert "--daily-spend" in bad
