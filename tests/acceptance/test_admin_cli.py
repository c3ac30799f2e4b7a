"""The operator's CLI on a fresh data dir: migrate, accounts, keys, credits, models."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx2
import pytest

from imagegate.api.app import create_app
from imagegate.runtime import build_runtime
from imagegate.settings import Settings
from tests.acceptance.conftest import IMAGEGATE, child_env

pytestmark = pytest.mark.slow


class Cli:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.database_url = f"sqlite+aiosqlite:///{data_dir / 'imagegate.db'}"
        self.env = child_env(
            IMAGEGATE_DATA_DIR=str(data_dir),
            IMAGEGATE_DATABASE_URL=self.database_url,
            COLUMNS="200",
        )

    def __call__(self, *args: str) -> str:
        result = subprocess.run(
            [IMAGEGATE, *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout


async def status_of(cli: Cli, key: str) -> int:
    settings = Settings(data_dir=cli.data_dir, database_url=cli.database_url)
    runtime = build_runtime(settings)
    try:
        transport = httpx2.ASGITransport(app=create_app(runtime))
        async with httpx2.AsyncClient(transport=transport, base_url="http://gw") as http:
            return (await http.get("/v2/me", headers={"X-API-Key": key})).status_code
    finally:
        await runtime.aclose()


async def test_an_operator_sets_up_an_account_from_the_cli(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    (tmp_path / "data").mkdir()
    assert "up to date" in cli("migrate")

    account = re.search(
        r"account (\S+) created", cli("accounts", "create", "acme", "--email", "ops@acme.test")
    )
    assert account is not None
    created = cli("keys", "create", "--name", "ci")
    key = re.search(r"^(ig_live_\S+)$", created, re.MULTILINE)
    assert key is not None
    assert await status_of(cli, key[1]) == 200

    assert "balance: 250 credits" in cli("credits", "grant", "250", "--note", "welcome")
    assert "balance: 250 credits (ledger total 250)" in cli("credits", "show")

    listing = cli("keys", "list")
    assert "ci" in listing and "active" in listing
    cli("keys", "revoke", key[1])
    assert "revoked" in cli("keys", "list")
    assert await status_of(cli, key[1]) == 401

    models = cli("models")
    assert "gpt-image-1.5" in models and "midjourneyParams" in models
    shown = cli("models", "show", "gpt-image-1.5")
    schema = json.loads(shown[shown.index("{") :])
    assert schema["properties"]["number_of_images"]["maximum"] == 10
