"""Submitting, running, reading, listing and cancelling jobs through the HTTP API."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from imagegate.api.app import create_app
from imagegate.store import accounts
from tests.conftest import count_rows
from tests.integration.conftest import Gateway, open_gateway

GPT = {"model": "gpt-image-1.5", "prompt": "a red fox", "gptImageParams": {"quality": "low"}}


async def test_submit_returns_202_with_location_and_the_job_runs_to_images(
    gateway: Gateway,
) -> None:
    body = {
        **GPT,
        "gptImageParams": {"quality": "low", "number_of_images": 2, "aspect_ratio": "3:2"},
    }
    response = await gateway.submit(body)

    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "QUEUED"
    assert response.headers["Location"] == f"/v2/jobs/{accepted['jobId']}"
    queued = await gateway.job(accepted["jobId"])
    assert queued["status"] == "QUEUED"
    assert queued["progress"] == 0
    assert queued["result"] is None
    assert queued["input"] == body

    await gateway.drain()

    job = await gateway.job(accepted["jobId"])
    assert job["status"] == "COMPLETED", job
    assert job["progress"] == 100
    assert job["error"] is None
    assert job["completedAt"] is not None
    assert job["creditCost"] == 0  # a test key is never charged
    assert len(job["result"]["images"]) == 2
    for url, meta in zip(job["result"]["images"], job["outputs"], strict=True):
        download = await gateway.http.get(url)
        assert download.status_code == 200
        image = Image.open(io.BytesIO(download.content))
        assert image.width > image.height  # 3:2
        assert download.headers["content-type"] == meta["contentType"]
        assert (image.width, image.height) == (meta["width"], meta["height"])


async def test_live_key_is_charged_once_on_success(gateway: Gateway) -> None:
    body = {**GPT, "gptImageParams": {"quality": "medium", "number_of_images": 3}}
    accepted = (await gateway.submit(body, key=gateway.live_key)).json()
    assert await gateway.balance() == 1000 - 27

    await gateway.drain()

    job = await gateway.job(accepted["jobId"], key=gateway.live_key)
    assert job["status"] == "COMPLETED"
    assert job["creditCost"] == 27
    assert await gateway.balance() == 973
    async with gateway.runtime.db.read() as conn:
        assert await accounts.ledger_sum(conn, gateway.account_id) == 973


async def test_failed_job_is_refunded(gateway: Gateway) -> None:
    body = {**GPT, "prompt": "a fox [[fail:moderated]]"}
    accepted = (await gateway.submit(body, key=gateway.live_key)).json()
    assert await gateway.balance() == 996

    await gateway.drain()

    job = await gateway.job(accepted["jobId"], key=gateway.live_key)
    assert job["status"] == "FAILED"
    assert job["creditCost"] == 0
    assert job["result"] is None
    assert "content policy" in job["error"]
    assert await gateway.balance() == 1000


async def test_midjourney_returns_four_images_and_a_grid(gateway: Gateway) -> None:
    body = {
        "model": "midjourney",
        "prompt": "a castle",
        "midjourneyParams": {"aspect_ratio": "16:9"},
    }
    accepted = (await gateway.submit(body, key=gateway.live_key)).json()
    await gateway.drain()

    job = await gateway.job(accepted["jobId"], key=gateway.live_key)
    assert job["status"] == "COMPLETED"
    assert job["creditCost"] == 16
    assert len(job["result"]["images"]) == 4
    assert (await gateway.http.get(job["result"]["gridUrl"])).status_code == 200


async def test_cancel_a_queued_job_refunds_it(gateway: Gateway) -> None:
    accepted = (await gateway.submit(GPT, key=gateway.live_key)).json()
    response = await gateway.http.post(
        f"/v2/jobs/{accepted['jobId']}/cancel", headers=gateway.headers(gateway.live_key)
    )

    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED"
    assert response.json()["creditCost"] == 0
    assert await gateway.balance() == 1000
    await gateway.drain()
    assert (await gateway.job(accepted["jobId"], key=gateway.live_key))["status"] == "CANCELLED"


async def test_cancel_a_finished_job_is_409(gateway: Gateway) -> None:
    accepted = (await gateway.submit(GPT)).json()
    await gateway.drain()
    response = await gateway.http.post(
        f"/v2/jobs/{accepted['jobId']}/cancel", headers=gateway.headers()
    )
    assert response.status_code == 409
    assert response.json()["code"] == "job_finished"


async def test_list_pages_newest_first_with_cursor(gateway: Gateway) -> None:
    ids = []
    for n in range(5):
        gateway.clock.advance(1)
        ids.append((await gateway.submit({**GPT, "prompt": f"fox {n}"})).json()["jobId"])

    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await gateway.http.get("/v2/jobs", params=query, headers=gateway.headers())).json()
        seen += [job["id"] for job in page["jobs"]]
        assert all("input" not in job and job["expired"] is False for job in page["jobs"])
        if not page["hasMore"]:
            assert page["nextCursor"] is None
            break
        cursor = page["nextCursor"]

    assert seen == list(reversed(ids))


async def test_list_filters_and_models(gateway: Gateway) -> None:
    gpt = (await gateway.submit(GPT)).json()["jobId"]
    mj = (await gateway.submit({"model": "midjourney", "prompt": "x"})).json()["jobId"]
    await gateway.http.post(f"/v2/jobs/{mj}/cancel", headers=gateway.headers())

    def ids(page: dict) -> list[str]:  # type: ignore[type-arg]
        return [job["id"] for job in page["jobs"]]

    async def page(**query: str) -> dict:  # type: ignore[type-arg]
        return (await gateway.http.get("/v2/jobs", params=query, headers=gateway.headers())).json()

    assert ids(await page(model="midjourney")) == [mj]
    assert ids(await page(status="CANCELLED")) == [mj]
    assert ids(await page(search=gpt)) == [gpt]
    assert (await page(include_models="true"))["models"] == ["gpt-image-1.5", "midjourney"]
    assert "models" not in await page()


async def test_me_shows_the_team_and_key(gateway: Gateway) -> None:
    body = (await gateway.http.get("/v2/me", headers=gateway.headers(gateway.live_key))).json()
    assert body["user"] == {"id": gateway.account_id, "email": "ops@acme.test", "role": "OWNER"}
    assert body["team"]["credits"] == 1000
    assert body["team"]["name"] == "acme"
    assert gateway.live_key.startswith(body["apiKey"]["prefix"])


async def test_models_are_public_and_describe_params(gateway: Gateway) -> None:
    listing = (await gateway.http.get("/v2/models")).json()["models"]
    gpt = next(model for model in listing if model["id"] == "gpt-image-1.5")
    assert gpt["pricingMode"] == "per-output"
    assert gpt["costMin"] == 4
    assert gpt["costMax"] == 240
    assert gpt["available"] is True  # the test gateway routes it to the sandbox

    detail = (await gateway.http.get("/v2/models/gpt-image-1.5")).json()
    assert detail["paramsSchema"]["properties"]["number_of_images"]["maximum"] == 10
    assert (await gateway.http.get("/v2/models/nope")).status_code == 404


async def test_live_submit_for_a_model_without_a_provider_is_400(
    database_url: str, tmp_path: Path
) -> None:
    # No routes override and no OpenAI key: gpt-image-1.5 has nowhere to run for a live key.
    async with open_gateway(database_url, tmp_path / "data") as gateway:
        response = await gateway.submit(GPT, key=gateway.live_key)
        assert response.status_code == 400
        assert "no upstream provider is configured" in response.json()["details"]["model"][0]
        assert await count_rows(gateway.runtime.db, "jobs") == 0
        assert await gateway.balance() == 1000
        # A test key runs every model on the sandbox.
        assert (await gateway.submit(GPT)).status_code == 202


async def test_the_openapi_document_is_built_while_the_app_starts(gateway: Gateway) -> None:
    """Built on its first request, the document held the event loop ~90 ms."""
    app = create_app(gateway.runtime)
    assert app.openapi_schema is None
    async with app.router.lifespan_context(app):
        assert app.openapi_schema is not None
        assert "GenerateImageRequest" in app.openapi_schema["components"]["schemas"]


async def test_openapi_has_one_schema_per_model_and_a_discriminator(gateway: Gateway) -> None:
    spec = (await gateway.http.get("/openapi.json")).json()
    union = spec["components"]["schemas"]["GenerateImageRequest"]
    assert union["discriminator"]["propertyName"] == "model"
    assert len(union["oneOf"]) == len(gateway.runtime.catalog)
    operation = spec["paths"]["/v2/images/generate"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/GenerateImageRequest"
    }
