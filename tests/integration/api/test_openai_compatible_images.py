"""The ``/v1`` images API, driven by OpenAI's own Python client, unmodified.

Each call waits for its job, so a worker is drained beside it (``call``). The jobs are ordinary:
they show under ``/v2/jobs`` and move the ledger as a native submit does.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import pytest
from PIL import Image

from imagegate.api.app import create_app
from tests.images import image_bytes
from tests.integration.conftest import SANDBOX_ROUTES, Gateway, open_gateway

T = TypeVar("T")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def openai_client(gateway: Gateway, key: str) -> openai.AsyncOpenAI:
    """OpenAI's client pointed at the gateway in-process; no retries, so each call is one job."""
    app = create_app(gateway.runtime)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    return openai.AsyncOpenAI(
        api_key=key, base_url="http://testserver/v1", http_client=http, max_retries=0
    )


async def call(gateway: Gateway, pending: Awaitable[T], *, advance_clock: bool = True) -> T:
    """Await ``pending`` while a worker runs the queue (advancing the fake clock, or not)."""
    task = asyncio.ensure_future(pending)
    worker = gateway.runtime.worker(concurrency=8)
    while not task.done():
        if advance_clock:
            await gateway.drain(rounds=5)
        else:
            await worker.drain()
        await asyncio.sleep(0.01)
    return await task


@pytest.fixture
async def slow_gateway(database_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    """A gateway whose ``/v1`` calls give up waiting after a fraction of a second."""
    async with open_gateway(
        database_url, tmp_path / "data", routes=SANDBOX_ROUTES, openai_wait_seconds=0.3
    ) as gw:
        yield gw


@pytest.fixture
async def poor_gateway(database_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    """A gateway whose account has 5 credits: too few for one gpt-image-1.5 image."""
    async with open_gateway(
        database_url, tmp_path / "data", credits=5, routes=SANDBOX_ROUTES
    ) as gw:
        yield gw


async def test_generate_answers_two_urls_that_download_as_images(gateway: Gateway) -> None:
    client = openai_client(gateway, gateway.test_key)
    result = await call(
        gateway,
        client.images.generate(
            model="gpt-image-1.5", prompt="a lighthouse", n=2, response_format="url"
        ),
    )
    assert len(result.data) == 2
    for image in result.data:
        assert image.url is not None and image.b64_json is None
        download = await gateway.http.get(image.url)
        assert download.status_code == 200
        assert download.headers["content-type"].startswith("image/")
    assert result.created > 0


async def test_without_response_format_a_model_answers_as_openai_answers_it(
    gateway: Gateway,
) -> None:
    """GPT image models in base64, as OpenAI always answers them (its docs' own examples read
    ``data[0].b64_json``); other models with URLs, DALL·E's default at OpenAI."""
    client = openai_client(gateway, gateway.test_key)
    gpt = await call(gateway, client.images.generate(model="gpt-image-1.5", prompt="a fox"))
    [image] = gpt.data
    assert image.url is None and image.b64_json is not None
    with Image.open(io.BytesIO(base64.b64decode(image.b64_json))) as picture:
        assert picture.width > 0
    sent_null = await call(
        gateway,
        gateway.http.post(
            "/v1/images/generations",
            json={"model": "gpt-image-1.5", "prompt": "a fox", "response_format": None},
            headers={"Authorization": f"Bearer {gateway.test_key}"},
        ),
    )
    assert [set(image) for image in sent_null.json()["data"]] == [{"b64_json"}]
    for model in ("dall-e-3", "flux-2-pro"):
        answer = await call(gateway, client.images.generate(model=model, prompt="a fox"))
        assert [(i.url is not None, i.b64_json) for i in answer.data] == [(True, None)], model


async def test_generate_answers_b64_json_with_the_stored_bytes(gateway: Gateway) -> None:
    client = openai_client(gateway, gateway.test_key)
    result = await call(
        gateway,
        client.images.generate(
            model="gpt-image-1.5",
            prompt="a lighthouse",
            n=2,
            size="1536x1024",
            output_format="png",
            response_format="b64_json",
        ),
    )
    assert len(result.data) == 2
    jobs = (await gateway.http.get("/v2/jobs", headers=gateway.headers())).json()["jobs"]
    stored = [await gateway.http.get(url) for url in jobs[0]["result"]["images"]]
    for image, original in zip(result.data, stored, strict=True):
        assert image.url is None and image.b64_json is not None
        decoded = base64.b64decode(image.b64_json)
        assert decoded == original.content
        assert decoded.startswith(PNG_SIGNATURE)
    assert (await gateway.job(jobs[0]["id"]))["input"]["gptImageParams"] == {
        "number_of_images": 2,
        "aspect_ratio": "3:2",
        "output_format": "png",
    }


async def test_edit_stores_images_and_mask_as_uploads_and_passes_them_to_the_model(
    gateway: Gateway,
) -> None:
    client = openai_client(gateway, gateway.test_key)
    result = await call(
        gateway,
        client.images.edit(
            model="ideogram-v2",
            prompt="replace the sky with fireworks",
            image=("photo.png", image_bytes((16, 16)), "image/png"),
            mask=("mask.png", image_bytes((16, 16), "white"), "image/png"),
        ),
    )
    assert len(result.data) == 1 and result.data[0].url
    jobs = (await gateway.http.get("/v2/jobs", headers=gateway.headers())).json()["jobs"]
    params = (await gateway.job(jobs[0]["id"]))["input"]["ideogramParams"]
    assert "/files/uploads/" in params["image"] and "/files/uploads/" in params["mask"]
    upload = await gateway.http.get(params["image"])
    assert upload.content == image_bytes((16, 16))


async def test_edit_of_a_model_without_input_images_is_refused_naming_image(
    gateway: Gateway,
) -> None:
    client = openai_client(gateway, gateway.test_key)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.images.edit(
            model="midjourney", prompt="x", image=("a.png", image_bytes(), "image/png")
        )
    assert caught.value.status_code == 400
    assert caught.value.param == "image"


async def test_a_size_the_model_cannot_make_is_a_400_naming_size(gateway: Gateway) -> None:
    client = openai_client(gateway, gateway.test_key)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.images.generate(model="gpt-image-1.5", prompt="x", size="1792x1024")
    assert caught.value.param == "size"
    body: Any = caught.value.body
    assert body["type"] == "invalid_request_error" and "16:9" in body["message"]


async def test_a_count_past_the_models_limit_is_a_400_naming_n(gateway: Gateway) -> None:
    client = openai_client(gateway, gateway.test_key)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.images.generate(model="gpt-image-1.5", prompt="x", n=11)
    assert caught.value.param == "n"


async def test_a_bad_key_is_an_authentication_error(gateway: Gateway) -> None:
    client = openai_client(gateway, "ig_test_not-a-key")
    with pytest.raises(openai.AuthenticationError) as caught:
        await client.images.generate(model="gpt-image-1.5", prompt="x")
    assert caught.value.status_code == 401
    body: Any = caught.value.body
    assert body["type"] == "authentication_error"


async def test_too_few_credits_is_a_402_status_error(poor_gateway: Gateway) -> None:
    client = openai_client(poor_gateway, poor_gateway.live_key)
    with pytest.raises(openai.APIStatusError) as caught:
        await client.images.generate(model="gpt-image-1.5", prompt="x", quality="high")
    assert caught.value.status_code == 402
    assert caught.value.code == "insufficient_credits"
    assert await poor_gateway.balance() == 5


async def test_a_job_past_the_wait_cap_is_a_504_naming_the_job(slow_gateway: Gateway) -> None:
    client = openai_client(slow_gateway, slow_gateway.test_key)
    with pytest.raises(openai.InternalServerError) as caught:
        await call(
            slow_gateway,
            client.images.generate(model="gpt-image-1.5", prompt="slow [[latency:60]]"),
            advance_clock=False,
        )
    assert caught.value.status_code == 504
    jobs = (await slow_gateway.http.get("/v2/jobs", headers=slow_gateway.headers())).json()
    job_id = jobs["jobs"][0]["id"]
    assert job_id in caught.value.message
    assert jobs["jobs"][0]["status"] in ("QUEUED", "PROCESSING")


async def test_raw_response_shows_status_and_headers(gateway: Gateway) -> None:
    client = openai_client(gateway, gateway.test_key)
    raw = await call(
        gateway,
        client.images.with_raw_response.generate(model="gpt-image-1.5", prompt="a lighthouse"),
    )
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "application/json"
    assert raw.headers.get("x-request-id")
    assert len(raw.parse().data) == 1


async def test_models_list_has_every_catalog_model(gateway: Gateway) -> None:
    client = openai_client(gateway, gateway.test_key)
    ids = [model.id async for model in client.models.list()]
    assert ids == [spec.id for spec in gateway.runtime.catalog]
    assert "gpt-image-1.5" in ids and "midjourney" in ids


async def test_a_live_generate_is_an_ordinary_job_charged_like_a_native_submit(
    gateway: Gateway,
) -> None:
    client = openai_client(gateway, gateway.live_key)
    before = await gateway.balance()
    await call(
        gateway,
        client.images.generate(model="gpt-image-1.5", prompt="a fox", n=2, quality="low"),
    )
    after_openai = await gateway.balance()
    native = await gateway.submit(
        {
            "model": "gpt-image-1.5",
            "prompt": "a fox",
            "gptImageParams": {"quality": "low", "number_of_images": 2},
        },
        gateway.live_key,
    )
    assert native.status_code == 202
    await gateway.drain()
    after_native = await gateway.balance()
    assert before - after_openai == after_openai - after_native == 8
    listed = (await gateway.http.get("/v2/jobs", headers=gateway.headers(gateway.live_key))).json()
    openai_job = listed["jobs"][1]
    assert openai_job["status"] == "COMPLETED" and openai_job["creditCost"] == 8
    assert len(openai_job["result"]["images"]) == 2


async def test_an_idempotency_key_makes_one_job(gateway: Gateway) -> None:
    client = openai_client(gateway, gateway.live_key)
    before = await gateway.balance()
    for _ in range(2):
        await call(
            gateway,
            client.images.generate(
                model="gpt-image-1.5",
                prompt="a fox",
                quality="low",
                extra_headers={"Idempotency-Key": "one-fox"},
            ),
        )
    listed = (await gateway.http.get("/v2/jobs", headers=gateway.headers(gateway.live_key))).json()
    assert len(listed["jobs"]) == 1
    assert before - await gateway.balance() == 4
