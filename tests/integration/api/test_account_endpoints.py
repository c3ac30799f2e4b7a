"""``/v2/account/...`` and ``/v2/operator/status``: a key's own account, never another's."""

from __future__ import annotations

from pathlib import Path

from imagegate.services import accounts as account_service
from imagegate.types import KeyKind
from tests.integration.conftest import Gateway, open_gateway

BODY = {"model": "gpt-image-1.5", "prompt": "a coin", "gptImageParams": {"quality": "low"}}  # 4


async def _other_account(gw: Gateway) -> tuple[str, str]:
    """A second account with a live key: (account id, key)."""
    other = await account_service.create_account(gw.runtime.db, gw.clock, "other")
    key = await account_service.create_key(gw.runtime.db, gw.clock, other.id, KeyKind.LIVE, "o")
    return other.id, key.secret


async def test_ledger_lists_every_movement_newest_first_with_the_balance(gateway: Gateway) -> None:
    job_id = (await gateway.submit(BODY, key=gateway.live_key)).json()["jobId"]
    await gateway.drain()

    response = await gateway.http.get("/v2/account/ledger", headers=gateway.headers())

    assert response.status_code == 200
    body = response.json()
    assert body["balance"] == 1000 - 4
    assert [e["kind"] for e in body["entries"]] == ["capture", "reserve", "grant"]
    assert body["entries"][1] == {
        "id": body["entries"][1]["id"],
        "kind": "reserve",
        "amount": -4,
        "balanceAfter": 996,
        "jobId": job_id,
        "note": None,
        "createdAt": body["entries"][1]["createdAt"],
    }
    assert body["nextCursor"] is None


async def test_ledger_pages_on_with_its_cursor(gateway: Gateway) -> None:
    for _ in range(3):
        await gateway.submit(BODY, key=gateway.live_key)

    first = (await gateway.http.get("/v2/account/ledger?limit=2", headers=gateway.headers())).json()
    second = (
        await gateway.http.get(
            f"/v2/account/ledger?limit=2&cursor={first['nextCursor']}", headers=gateway.headers()
        )
    ).json()

    ids = [e["id"] for e in first["entries"] + second["entries"]]
    assert len(ids) == 4 == len(set(ids))
    assert ids == sorted(ids, reverse=True)
    assert second["nextCursor"] is None


async def test_keys_list_marks_the_current_key_and_never_shows_a_secret(gateway: Gateway) -> None:
    response = await gateway.http.get("/v2/account/keys", headers=gateway.headers())

    assert response.status_code == 200
    keys = response.json()["keys"]
    assert [(k["name"], k["kind"], k["status"], k["current"]) for k in keys] == [
        ("live", "live", "active", False),
        ("test", "test", "active", True),
    ]
    assert gateway.live_key not in response.text and gateway.test_key not in response.text
    assert set(keys[0]) == {"id", "name", "prefix", "kind", "status", "createdAt", "current"}


async def test_a_created_key_is_shown_once_and_works(gateway: Gateway) -> None:
    headers = gateway.headers(gateway.live_key)
    response = await gateway.http.post(
        "/v2/account/keys", json={"name": "ci", "kind": "live"}, headers=headers
    )

    assert response.status_code == 201
    created = response.json()
    assert created["key"].startswith("ig_live_")
    assert created["name"] == "ci" and created["status"] == "active"
    me = await gateway.http.get("/v2/me", headers={"X-API-Key": created["key"]})
    assert me.status_code == 200
    listed = (await gateway.http.get("/v2/account/keys", headers=headers)).text
    assert created["key"] not in listed and created["id"] in listed


async def test_a_test_key_creates_test_keys_only(gateway: Gateway) -> None:
    live = await gateway.http.post(
        "/v2/account/keys", json={"name": "x", "kind": "live"}, headers=gateway.headers()
    )
    test = await gateway.http.post(
        "/v2/account/keys", json={"name": "x"}, headers=gateway.headers()
    )

    assert live.status_code == 403
    assert live.json()["code"] == "forbidden"
    assert test.status_code == 201
    assert test.json()["kind"] == "test"


async def test_a_key_without_a_name_is_a_400_naming_the_field(gateway: Gateway) -> None:
    response = await gateway.http.post(
        "/v2/account/keys", json={"name": ""}, headers=gateway.headers()
    )

    assert response.status_code == 400
    assert list(response.json()["details"]) == ["name"]


async def test_revoking_a_key_locks_it_out_for_good(gateway: Gateway) -> None:
    headers = gateway.headers(gateway.live_key)
    created = (
        await gateway.http.post("/v2/account/keys", json={"name": "tmp"}, headers=headers)
    ).json()

    revoked = await gateway.http.post(f"/v2/account/keys/{created['id']}/revoke", headers=headers)
    again = await gateway.http.post(f"/v2/account/keys/{created['id']}/activate", headers=headers)

    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    assert (
        await gateway.http.get("/v2/me", headers={"X-API-Key": created["key"]})
    ).status_code == 401
    assert again.status_code == 409


async def test_deactivating_a_key_answers_403_until_it_is_activated(gateway: Gateway) -> None:
    headers = gateway.headers(gateway.live_key)
    created = (
        await gateway.http.post("/v2/account/keys", json={"name": "tmp"}, headers=headers)
    ).json()
    use = {"X-API-Key": created["key"]}

    off = await gateway.http.post(f"/v2/account/keys/{created['id']}/deactivate", headers=headers)
    blocked = await gateway.http.get("/v2/me", headers=use)
    on = await gateway.http.post(f"/v2/account/keys/{created['id']}/activate", headers=headers)

    assert off.json()["status"] == "inactive"
    assert blocked.status_code == 403
    assert on.json()["status"] == "active"
    assert (await gateway.http.get("/v2/me", headers=use)).status_code == 200


async def test_a_key_cannot_revoke_or_deactivate_itself(gateway: Gateway) -> None:
    keys = (await gateway.http.get("/v2/account/keys", headers=gateway.headers())).json()["keys"]
    own = next(k for k in keys if k["current"])

    for verb in ("revoke", "deactivate"):
        response = await gateway.http.post(
            f"/v2/account/keys/{own['id']}/{verb}", headers=gateway.headers()
        )
        assert response.status_code == 409
        assert "itself" in response.json()["error"]
    assert (await gateway.http.get("/v2/me", headers=gateway.headers())).status_code == 200


async def test_a_test_key_cannot_change_a_live_key(gateway: Gateway) -> None:
    keys = (await gateway.http.get("/v2/account/keys", headers=gateway.headers())).json()["keys"]
    live = next(k for k in keys if k["kind"] == "live")

    response = await gateway.http.post(
        f"/v2/account/keys/{live['id']}/revoke", headers=gateway.headers()
    )

    assert response.status_code == 403
    me = await gateway.http.get("/v2/me", headers=gateway.headers(gateway.live_key))
    assert me.status_code == 200


async def test_one_account_can_neither_see_nor_touch_another_accounts_keys(
    gateway: Gateway,
) -> None:
    _, other_key = await _other_account(gateway)
    mine = (await gateway.http.get("/v2/account/keys", headers=gateway.headers())).json()["keys"]
    theirs = (await gateway.http.get("/v2/account/keys", headers={"X-API-Key": other_key})).json()[
        "keys"
    ]

    assert {k["id"] for k in mine}.isdisjoint({k["id"] for k in theirs})
    for key in mine:
        for verb in ("revoke", "deactivate", "activate"):
            response = await gateway.http.post(
                f"/v2/account/keys/{key['id']}/{verb}", headers={"X-API-Key": other_key}
            )
            assert response.status_code == 404
    me = await gateway.http.get("/v2/me", headers=gateway.headers(gateway.live_key))
    assert me.status_code == 200


async def test_the_webhook_secret_shows_and_rotates_keeping_the_previous_one(
    gateway: Gateway,
) -> None:
    headers = gateway.headers()
    shown = (await gateway.http.get("/v2/account/webhook-secret", headers=headers)).json()
    rotated = await gateway.http.post("/v2/account/webhook-secret/rotate", headers=headers)
    after = (await gateway.http.get("/v2/account/webhook-secret", headers=headers)).json()

    assert shown["secret"].startswith("whsec_")
    assert shown["previous"] is None
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != shown["secret"]
    assert after == {"secret": rotated.json()["secret"], "previous": shown["secret"]}


async def test_account_routes_need_a_key(gateway: Gateway) -> None:
    for path in ("/v2/account/keys", "/v2/account/ledger", "/v2/account/webhook-secret"):
        assert (await gateway.http.get(path)).status_code == 401


async def test_operator_status_shows_the_queue_to_the_first_account_only(
    gateway: Gateway,
) -> None:
    first = (await gateway.submit(BODY, key=gateway.live_key)).json()["jobId"]
    await gateway.submit(BODY, key=gateway.live_key)
    _, other_key = await _other_account(gateway)

    mine = await gateway.http.get("/v2/operator/status", headers=gateway.headers())
    theirs = await gateway.http.get("/v2/operator/status", headers={"X-API-Key": other_key})

    assert mine.status_code == 200
    queue = mine.json()["queue"]
    assert queue["queued"] == 2
    assert queue["oldestQueuedJobId"] == first
    assert theirs.status_code == 403
    assert theirs.json()["code"] == "forbidden"


async def test_operator_status_lists_configured_providers_with_their_caps(
    database_url: str, tmp_path: Path
) -> None:
    providers = {"openai": {"api_key": "sk-test", "max_concurrency": 3, "rate_per_minute": 60}}
    async with open_gateway(database_url, tmp_path, providers=providers) as gw:
        response = await gw.http.get("/v2/operator/status", headers=gw.headers())

        listed = {p["provider"]: p for p in response.json()["providers"]}
        assert listed["openai"] == {
            "provider": "openai",
            "status": "ok",
            "failures": 0,
            "circuitOpenUntil": None,
            "cooldownUntil": None,
            "maxConcurrency": 3,
            "ratePerMinute": 60,
            "error": None,
        }
