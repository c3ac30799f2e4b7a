"""``GET /v2/me`` validates against Apiframe's published ``Me`` schema for every account.

Apiframe requires ``user.email`` with ``format: email``: an account made without one shows the
operator's ``owner_email``, and the first start gives the first account that email.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from jsonschema import Draft202012Validator

from imagegate.api.app import create_app
from imagegate.runtime import build_runtime
from imagegate.services import accounts as account_service
from imagegate.services.bootstrap import bootstrap
from imagegate.types import KeyKind
from tests.conftest import make_settings
from tests.integration.conftest import Gateway, open_gateway
from tests.reference import apiframe_schema


@pytest.fixture
def me_schema() -> dict[str, Any]:
    return apiframe_schema("Me")


@pytest.fixture
async def gateway_with_owner(database_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with open_gateway(
        database_url, tmp_path / "data", owner_email="admin@studio.example"
    ) as gw:
        yield gw


def problems(schema: dict[str, Any], body: dict[str, Any]) -> list[str]:
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]


async def me(gateway: Gateway, key: str) -> dict[str, Any]:
    response = await gateway.http.get("/v2/me", headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_an_account_with_an_email_shows_it_and_conforms(
    gateway: Gateway, me_schema: dict[str, Any]
) -> None:
    body = await me(gateway, gateway.live_key)
    assert body["user"]["email"] == "ops@acme.test"
    assert problems(me_schema, body) == []


async def test_an_account_without_an_email_shows_the_owner_email_and_conforms(
    gateway_with_owner: Gateway, me_schema: dict[str, Any]
) -> None:
    gw = gateway_with_owner
    account = await account_service.create_account(gw.runtime.db, gw.clock, "legacy")
    key = await account_service.create_key(gw.runtime.db, gw.clock, account.id, KeyKind.TEST, "t")
    body = await me(gw, key.secret)
    assert body["user"]["email"] == "admin@studio.example"
    assert problems(me_schema, body) == []


async def test_the_default_owner_email_is_a_valid_email(
    gateway: Gateway, me_schema: dict[str, Any]
) -> None:
    account = await account_service.create_account(gateway.runtime.db, gateway.clock, "legacy")
    key = await account_service.create_key(
        gateway.runtime.db, gateway.clock, account.id, KeyKind.TEST, "t"
    )
    body = await me(gateway, key.secret)
    assert body["user"]["email"] == "owner@localhost.localdomain"
    assert problems(me_schema, body) == []


async def test_the_first_start_gives_the_first_account_the_owner_email(
    database_url: str, tmp_path: Path, me_schema: dict[str, Any]
) -> None:
    runtime = build_runtime(make_settings(database_url, tmp_path / "data"))
    try:
        first = await bootstrap(runtime.db, runtime.clock, email="first@studio.example")
        assert first is not None
        transport = httpx2.ASGITransport(app=create_app(runtime))
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.get("/v2/me", headers={"X-API-Key": first.test_key})
        body = response.json()
        assert body["user"]["email"] == "first@studio.example"
        assert problems(me_schema, body) == []
    finally:
        await runtime.aclose()
