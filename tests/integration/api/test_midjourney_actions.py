"""``POST /v2/images/midjourney/action``: follow-up jobs on finished Midjourney jobs.

On the ``gateway`` fixture live Midjourney runs on the sandbox (charged); the last tests run the
real relay adapter against the fake midjourney-proxy.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
import threading
from pathlib import Path
from typing import Any

import httpx2
import pytest
from PIL import Image
from pydantic import SecretStr
from sqlalchemy import update

from imagegate.api import bodies
from imagegate.providers.midjourney import create_adapter
from imagegate.providers.port import ProviderContext
from imagegate.services import actions
from imagegate.settings import ProviderSettings
from imagegate.store import jobs as job_store
from imagegate.store.tables import jobs
from imagegate.testing.fake_upstream.midjourney import QUADRANT_COLOURS
from imagegate.testing.fake_upstream.midjourney import create_app as create_relay
from imagegate.types import FetchedInput
from tests.conftest import count_rows
from tests.integration.conftest import Gateway, open_gateway

ACTION = "/v2/images/midjourney/action"
GENERATE = {
    "model": "midjourney",
    "prompt": "a castle",
    "midjourneyParams": {"aspect_ratio": "1:1"},
}


def _mask(size: tuple[int, int] = (64, 64)) -> str:
    image = Image.new("L", size, 0)
    image.paste(255, (0, 0, size[0] // 2, size[1] // 2))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


async def act(gw: Gateway, body: dict[str, Any], key: str | None = None, **headers: str) -> Any:
    return await gw.http.post(ACTION, json=body, headers=gw.headers(key, **headers))


async def finished(gw: Gateway, response: httpx2.Response, key: str | None = None) -> Any:
    assert response.status_code == 202, response.text
    await gw.drain()
    job = await gw.job(response.json()["jobId"], key=key)
    assert job["status"] == "COMPLETED", job
    return job


async def grid(gw: Gateway, key: str | None = None) -> str:
    job = await finished(gw, await gw.submit(GENERATE, key=key), key)
    return str(job["id"])


async def upsample(gw: Gateway, key: str | None = None) -> str:
    parent = await grid(gw, key)
    body = {"action": "upsample", "parentJobId": parent, "index": 2}
    job = await finished(gw, await act(gw, body, key), key)
    return str(job["id"])


async def test_upsample_a_grid_gives_one_image_for_four_credits(gateway: Gateway) -> None:
    live = gateway.live_key
    parent = await grid(gateway, live)
    assert await gateway.balance() == 1000 - 16

    response = await act(gateway, {"action": "upsample", "parentJobId": parent, "index": 3}, live)

    assert response.headers["Location"] == f"/v2/jobs/{response.json()['jobId']}"
    assert response.json()["status"] == "QUEUED"
    job = await finished(gateway, response, live)
    assert job["id"] != parent
    assert job["model"] == "midjourney"
    assert job["creditCost"] == 4
    assert len(job["result"]["images"]) == 1
    assert job["result"].get("gridUrl") is None
    assert (await gateway.http.get(job["result"]["images"][0])).status_code == 200
    assert await gateway.balance() == 1000 - 16 - 4


async def test_variation_gives_a_new_grid_for_sixteen_credits(gateway: Gateway) -> None:
    parent = await grid(gateway, gateway.live_key)
    body = {"action": "variation", "parentJobId": parent, "index": 1}

    job = await finished(gateway, await act(gateway, body, gateway.live_key), gateway.live_key)

    assert job["creditCost"] == 16
    assert len(job["result"]["images"]) == 4
    assert (await gateway.http.get(job["result"]["gridUrl"])).status_code == 200
    assert await gateway.balance() == 1000 - 32


async def test_a_variation_is_a_grid_and_can_be_upsampled(gateway: Gateway) -> None:
    parent = await grid(gateway)
    variation = await finished(
        gateway, await act(gateway, {"action": "variation", "parentJobId": parent, "index": 4})
    )
    body = {"action": "upsample", "parentJobId": variation["id"], "index": 1}

    job = await finished(gateway, await act(gateway, body))

    assert len(job["result"]["images"]) == 1


@pytest.mark.parametrize(
    "extra",
    [
        {"action": "inpaint", "mask": _mask(), "prompt": "a dragon on the tower"},
        {"action": "inpaint", "mask": "data:image/png;base64," + _mask()},
        {"action": "outpaint", "zoomRatio": 1.5},
        {"action": "outpaint", "zoomRatio": 2},
        {"action": "pan", "direction": "left"},
    ],
)
async def test_edits_of_an_upsample_give_a_grid_for_sixteen_credits(
    gateway: Gateway, extra: dict[str, Any]
) -> None:
    parent = await upsample(gateway, gateway.live_key)
    before = await gateway.balance()

    response = await act(gateway, {"parentJobId": parent, **extra}, gateway.live_key)

    job = await finished(gateway, response, gateway.live_key)
    assert job["creditCost"] == 16
    assert len(job["result"]["images"]) == 4
    assert job["result"]["gridUrl"]
    assert await gateway.balance() == before - 16
    async with gateway.runtime.db.read() as conn:
        row = await job_store.get_job(conn, job["id"])
    assert row is not None
    assert row.parent_job_id == parent
    assert row.action is not None and row.action["type"] == extra["action"]
    assert row.prompt == extra.get("prompt", "a castle")


async def test_test_keys_act_on_test_jobs_for_free(gateway: Gateway) -> None:
    parent = await upsample(gateway)
    job = await finished(
        gateway, await act(gateway, {"action": "pan", "parentJobId": parent, "direction": "up"})
    )

    assert job["creditCost"] == 0
    assert await gateway.balance() == 1000


@pytest.mark.parametrize(
    ("parent_kind", "extra"),
    [
        ("upsample", {"action": "upsample", "index": 1}),
        ("upsample", {"action": "variation", "index": 2}),
        ("grid", {"action": "pan", "direction": "down"}),
        ("grid", {"action": "outpaint", "zoomRatio": 2}),
        ("grid", {"action": "inpaint", "mask": _mask()}),
    ],
)
async def test_the_wrong_kind_of_parent_is_400_and_charges_nothing(
    gateway: Gateway, parent_kind: str, extra: dict[str, Any]
) -> None:
    live = gateway.live_key
    parent = await (upsample(gateway, live) if parent_kind == "upsample" else grid(gateway, live))
    before = await gateway.balance()
    jobs_before = await count_rows(gateway.runtime.db, "jobs")

    response = await act(gateway, {"parentJobId": parent, **extra}, live)

    assert response.status_code == 400
    assert list(response.json()["details"]) == ["parentJobId"]
    assert await gateway.balance() == before
    assert await count_rows(gateway.runtime.db, "jobs") == jobs_before


async def test_a_non_midjourney_parent_is_400(gateway: Gateway) -> None:
    body = {"model": "gpt-image-1.5", "prompt": "x", "gptImageParams": {"quality": "low"}}
    parent = (await finished(gateway, await gateway.submit(body)))["id"]

    response = await act(gateway, {"action": "upsample", "parentJobId": parent, "index": 1})

    assert response.status_code == 400
    assert "midjourney" in response.json()["details"]["parentJobId"][0]


async def test_a_parent_that_has_not_finished_is_409_and_charges_nothing(
    gateway: Gateway,
) -> None:
    # 409, not 400: the request is well formed and the parent may still complete.
    parent = (await gateway.submit(GENERATE, key=gateway.live_key)).json()["jobId"]
    body = {"action": "upsample", "parentJobId": parent, "index": 1}

    response = await act(gateway, body, gateway.live_key)

    assert response.status_code == 409
    assert response.json()["code"] == "action_unavailable"
    assert "QUEUED" in response.json()["error"]
    assert await gateway.balance() == 1000 - 16
    assert await count_rows(gateway.runtime.db, "jobs") == 1


async def test_a_parent_without_an_upstream_task_is_409(gateway: Gateway) -> None:
    parent = await grid(gateway, gateway.live_key)
    async with gateway.runtime.db.transaction() as conn:  # a job finished before actions existed
        await conn.execute(
            update(jobs)
            .where(jobs.c.id == parent)
            .values(provider=None, upstream_model=None, provider_task_id=None)
        )

    response = await act(
        gateway, {"action": "upsample", "parentJobId": parent, "index": 1}, gateway.live_key
    )

    assert response.status_code == 409
    assert response.json()["code"] == "action_unavailable"
    assert await gateway.balance() == 1000 - 16


async def test_live_and_test_jobs_do_not_mix(gateway: Gateway) -> None:
    test_parent = await grid(gateway)
    live_parent = await grid(gateway, gateway.live_key)

    live_on_test = await act(
        gateway, {"action": "upsample", "parentJobId": test_parent, "index": 1}, gateway.live_key
    )
    test_on_live = await act(
        gateway, {"action": "upsample", "parentJobId": live_parent, "index": 1}
    )

    assert (live_on_test.status_code, test_on_live.status_code) == (409, 409)
    assert await gateway.balance() == 1000 - 16


async def test_another_accounts_parent_is_404(gateway: Gateway, tmp_path: Path) -> None:
    from imagegate.services import accounts as account_service
    from imagegate.types import KeyKind

    parent = await grid(gateway)
    other = await account_service.create_account(
        gateway.runtime.db, gateway.clock, "rival", "ops@rival.test"
    )
    key = await account_service.create_key(
        gateway.runtime.db, gateway.clock, other.id, KeyKind.TEST, "test"
    )

    response = await act(
        gateway, {"action": "upsample", "parentJobId": parent, "index": 1}, key.secret
    )
    missing = await act(
        gateway,
        {"action": "upsample", "parentJobId": "0193a5b2-7c4d-7000-8000-000000000000", "index": 1},
    )

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "upsample", "parentJobId": "not-a-uuid", "index": 1}, "parentJobId"),
        ({"action": "upsample", "index": 1}, "parentJobId"),
        ({"action": "upsample", "parentJobId": "{id}", "index": 5}, "index"),
        ({"action": "upsample", "parentJobId": "{id}", "index": "1"}, "index"),
        ({"action": "variation", "parentJobId": "{id}"}, "index"),
        ({"action": "upscale", "parentJobId": "{id}", "index": 1}, "action"),
        ({"parentJobId": "{id}", "index": 1}, "action"),
        ({"action": "upsample", "parentJobId": "{id}", "index": 1, "prompt": "x"}, "prompt"),
        ({"action": "inpaint", "parentJobId": "{id}", "mask": ""}, "mask"),
        ({"action": "inpaint", "parentJobId": "{id}", "mask": "not base64!"}, "mask"),
        ({"action": "inpaint", "parentJobId": "{id}", "mask": "aGVsbG8gd29ybGQ="}, "mask"),
        ({"action": "inpaint", "parentJobId": "{id}", "mask": "A" * 12_000_004}, "mask"),
        (
            {"action": "inpaint", "parentJobId": "{id}", "mask": "{mask}", "prompt": "p" * 2001},
            "prompt",
        ),
        ({"action": "outpaint", "parentJobId": "{id}", "zoomRatio": 3}, "zoomRatio"),
        ({"action": "pan", "parentJobId": "{id}", "direction": "north"}, "direction"),
        (
            {"action": "pan", "parentJobId": "{id}", "direction": "up", "webhookUrl": "ftp://x"},
            "webhookUrl",
        ),
        (
            {"action": "pan", "parentJobId": "{id}", "direction": "up", "webhookEvents": []},
            "webhookEvents",
        ),
    ],
)
async def test_bad_input_is_400_naming_the_field(
    gateway: Gateway, body: dict[str, Any], field: str
) -> None:
    parent = (
        await upsample(gateway)
        if body.get("action") in ("inpaint", "pan")
        else "0193a5b2-7c4d-7000-8000-000000000000"
    )
    filled = {
        k: (
            v.replace("{id}", parent).replace("{mask}", _mask())
            if isinstance(v, str) and len(v) < 100
            else v
        )
        for k, v in body.items()
    }

    response = await act(gateway, filled)

    assert response.status_code == 400
    assert response.json()["code"] == "validation_failed"
    assert list(response.json()["details"]) == [field]


async def test_a_mask_larger_than_the_default_body_limit_is_accepted_off_the_loop(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large body is decoded, its mask checked and the body fingerprinted on threads (tens of
    milliseconds for a 12 MB mask), never on the event loop (this test's thread)."""
    parent = await upsample(gateway)
    noise = Image.frombytes("L", (1200, 1200), os.urandom(1200 * 1200))
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG")
    mask = base64.b64encode(buffer.getvalue()).decode()
    assert len(mask) > gateway.runtime.settings.max_body_bytes
    ran_on: dict[str, int] = {}
    for module, name in ((bodies, "load_json"), (actions, "_read_action")):
        original = getattr(module, name)

        def spy(*args: Any, name: str = name, original: Any = original) -> Any:
            ran_on[name] = threading.get_ident()
            return original(*args)

        monkeypatch.setattr(module, name, spy)

    response = await act(gateway, {"action": "inpaint", "parentJobId": parent, "mask": mask})

    assert response.status_code == 202, response.text
    assert set(ran_on) == {"load_json", "_read_action"}
    assert threading.get_ident() not in ran_on.values()


async def test_a_body_that_is_not_an_object_is_400(gateway: Gateway) -> None:
    response = await gateway.http.post(
        ACTION, content=b"[1, 2]", headers={**gateway.headers(), "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["details"] == {"body": ["must be a JSON object"]}


async def test_idempotent_replay_makes_one_job_and_charges_once(gateway: Gateway) -> None:
    parent = await grid(gateway, gateway.live_key)
    body = {"action": "upsample", "parentJobId": parent, "index": 4}
    headers = {"Idempotency-Key": "act-1"}

    responses = await asyncio.gather(
        *(act(gateway, body, gateway.live_key, **headers) for _ in range(10))
    )
    other = await act(gateway, {**body, "index": 3}, gateway.live_key, **headers)

    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["jobId"] for r in responses}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 9
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_key_reused"
    assert await count_rows(gateway.runtime.db, "jobs") == 2
    assert await gateway.balance() == 1000 - 16 - 4
    await gateway.drain()
    replay = await act(gateway, body, gateway.live_key, **headers)
    assert replay.json() == {"jobId": responses[0].json()["jobId"], "status": "COMPLETED"}


async def test_short_of_credits_is_402_and_charges_nothing(
    database_url: str, tmp_path: Path
) -> None:
    routes = {"midjourney": ["sandbox:midjourney"]}
    async with open_gateway(
        database_url, tmp_path / "data", credits=16 + 4 + 10, routes=routes
    ) as gw:
        parent = await upsample(gw, gw.live_key)
        assert await gw.balance() == 10

        response = await act(
            gw, {"action": "pan", "parentJobId": parent, "direction": "right"}, gw.live_key
        )

        assert response.status_code == 402
        assert response.json()["creditsRequired"] == 16
        assert response.json()["creditsAvailable"] == 10
        assert await gw.balance() == 10
        assert await count_rows(gw.runtime.db, "jobs") == 2


async def test_the_request_schema_is_in_openapi(gateway: Gateway) -> None:
    schema = (await gateway.http.get("/openapi.json")).json()
    operation = schema["paths"][ACTION]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]

    assert body["title"] == "MidjourneyActionRequest"
    actions = [variant["properties"]["action"]["const"] for variant in body["oneOf"]]
    assert actions == ["upsample", "variation", "inpaint", "outpaint", "pan"]
    assert all(variant["additionalProperties"] is False for variant in body["oneOf"])
    assert {"202", "400", "402", "404", "409"} <= set(operation["responses"])


# --- the real Midjourney adapter against the fake relay -------------------------------------


async def _no_inputs(url: str) -> FetchedInput:
    raise AssertionError(f"a Midjourney action fetches no input images, asked for {url}")


def _relay_gateway(
    database_url: str, data_dir: Path, relay: Any
) -> contextlib.AbstractAsyncContextManager[Gateway]:
    adapter = create_adapter(
        ProviderSettings(api_key=SecretStr("test-secret"), base_url="http://relay.test"),
        ProviderContext(fetch_input=_no_inputs, transport=httpx2.ASGITransport(app=relay)),
    )
    return open_gateway(
        database_url,
        data_dir,
        adapters={"midjourney": adapter},
        transport=httpx2.ASGITransport(app=relay),
    )


def _colour(data: bytes) -> tuple[int, ...]:
    with Image.open(io.BytesIO(data)) as image:
        return tuple(image.convert("RGB").getpixel((image.width - 2, image.height - 2)))


async def test_generate_then_upsample_through_the_relay(database_url: str, tmp_path: Path) -> None:
    relay = create_relay()
    async with _relay_gateway(database_url, tmp_path / "data", relay) as gw:
        parent = await grid(gw, gw.live_key)
        body = {"action": "upsample", "parentJobId": parent, "index": 2}

        job = await finished(gw, await act(gw, body, gw.live_key), gw.live_key)

        assert job["creditCost"] == 4
        assert len(job["result"]["images"]) == 1
        assert job["result"].get("gridUrl") is None
        image = await gw.http.get(job["result"]["images"][0])
        assert _colour(image.content) == QUADRANT_COLOURS[1]
        submits = [r for r in relay.state.requests if r["path"].startswith("/mj/submit/")]
        assert [r["path"] for r in submits] == ["/mj/submit/imagine", "/mj/submit/change"]
        (imagine,) = [t for t in relay.state.tasks.values() if t.action == "IMAGINE"]
        assert submits[1]["json"] == {"taskId": imagine.id, "action": "UPSCALE", "index": 2}
        assert await gw.balance() == 1000 - 16 - 4


@pytest.mark.parametrize(
    ("extra", "custom_id"),
    [
        ({"action": "pan", "direction": "up"}, "MJ::JOB::pan_up::"),
        ({"action": "outpaint", "zoomRatio": 1.5}, "MJ::Outpaint::75::"),
        ({"action": "inpaint", "mask": _mask(), "prompt": "a moat"}, "MJ::Inpaint::"),
    ],
)
async def test_edits_of_an_upsample_through_a_relay_with_buttons(
    database_url: str, tmp_path: Path, extra: dict[str, Any], custom_id: str
) -> None:
    relay = create_relay(buttons=True)
    async with _relay_gateway(database_url, tmp_path / "data", relay) as gw:
        parent = await upsample(gw, gw.live_key)

        job = await finished(
            gw, await act(gw, {"parentJobId": parent, **extra}, gw.live_key), gw.live_key
        )

        assert job["creditCost"] == 16
        assert len(job["result"]["images"]) == 4
        assert job["result"]["gridUrl"]
        (upscale,) = [t for t in relay.state.tasks.values() if t.action == "UPSCALE"]
        actions = [r["json"] for r in relay.state.requests if r["path"] == "/mj/submit/action"]
        assert actions[-1]["taskId"] == upscale.id
        assert actions[-1]["customId"].startswith(custom_id)
        if extra["action"] == "inpaint":
            (modal,) = [r["json"] for r in relay.state.requests if r["path"] == "/mj/submit/modal"]
            assert modal["maskBase64"] == extra["mask"]
            assert modal["prompt"].startswith("a moat")
        assert await gw.balance() == 1000 - 16 - 4 - 16
