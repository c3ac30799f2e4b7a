"""Every catalog model, through each of its routes, end to end against the fake vendors.

One gateway per case, with live keys forced onto one route (``routes`` override, substitutes
off), every adapter and the output downloader talking to ``imagegate.testing.vendors``. A job
with minimal valid params must complete with the catalog's number of images and price, and the
stored images must be real pictures. Routes to models their vendor retired answer the way the
vendor documents it; the job fails, is refunded, and says why. The per-image-priced models also
ask each route for two images; a handful of cases run on PostgreSQL as well.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from imagegate.catalog import build_catalog
from imagegate.catalog.spec import ModelSpec
from imagegate.testing.vendors import VendorTransport
from tests.images import image_bytes
from tests.integration.conftest import Gateway, on_fake_vendors, one_route

CATALOG = build_catalog({})
CREDITS = 1000

RETIRED_UPSTREAM = frozenset(
    {
        "openai:dall-e-2",
        "openai:dall-e-3",
        "replicate:google/imagen-3",
        "replicate:google/imagen-3-fast",
        "replicate:google/imagen-4",
        "replicate:google/imagen-4-ultra",
        "replicate:google/imagen-4-fast",
        "fal:fal-ai/imagen4/preview",
        "fal:fal-ai/imagen4/preview/ultra",
        "fal:fal-ai/imagen4/preview/fast",
    }
)
"""Routes to models their vendor shut down."""
GONE = r"not (be )?found|does not exist"
"""What those vendors answer (Replicate, fal: 404 not found; OpenAI: ``model_not_found``)."""

CASES = [
    pytest.param(spec.id, str(route), id=f"{spec.id}@{route}")
    for spec in CATALOG
    for route in (*spec.routes, *spec.substitutes)
]


def _open(
    database_url: str, data_dir: Path, vendors: VendorTransport, **settings: Any
) -> contextlib.AbstractAsyncContextManager[Gateway]:
    """A gateway whose live keys reach the fake ``vendors``; closed even if a check fails."""
    return on_fake_vendors(database_url, data_dir, vendors, credits=CREDITS, **settings)


async def _params(gateway: Gateway, spec: ModelSpec) -> dict[str, Any]:
    """The smallest params object the model accepts: none, unless it requires an input image."""
    if not spec.params_required:
        return {}
    upload = await gateway.http.post(
        "/v2/uploads",
        files={"file": ("character.png", image_bytes((32, 32), (200, 40, 40)), "image/png")},
        headers=gateway.headers(gateway.live_key),
    )
    assert upload.status_code == 201, upload.text
    return {spec.params_key: {"character_reference_image": upload.json()["url"]}}


async def _run(
    gateway: Gateway, model: str, params: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Submit one job (minimal params unless ``params`` given), drain the queue, read the job."""
    spec = CATALOG.get(model)
    assert spec is not None
    body: dict[str, Any] = {"model": model, "prompt": "a lighthouse at dawn"}
    body.update({spec.params_key: params} if params else await _params(gateway, spec))
    accepted = await gateway.submit(body, key=gateway.live_key)
    assert accepted.status_code == 202, accepted.text
    await gateway.drain()
    return body, await gateway.job(accepted.json()["jobId"], key=gateway.live_key)


async def _check(
    gateway: Gateway,
    model: str,
    route: str,
    params: dict[str, Any] | None = None,
    failure: str | None = None,
) -> None:
    """The job succeeded as the catalog promises, or failed (refunded) with ``failure``'s error."""
    body, job = await _run(gateway, model, params)
    request = CATALOG.parse(body)
    price = CATALOG.price(request.spec, request.params)
    if failure is not None:
        assert job["status"] == "FAILED", job
        assert re.search(failure, job["error"]), job["error"]
        assert job["creditCost"] == 0  # refunded: a failed job costs 0
        assert await gateway.balance() == CREDITS
        return
    assert job["status"] == "COMPLETED", job
    assert job["creditCost"] == price
    # servedBy.model may be the vendor's own version name (``kling-v1`` for ``kling-image``).
    assert job["servedBy"]["provider"] == route.partition(":")[0]
    urls = list(job["result"]["images"])
    assert len(urls) == request.spec.outputs(request.params)
    if request.spec.grid:
        urls.append(job["result"]["gridUrl"])
    for url in urls:
        response = await gateway.http.get(url)
        assert response.status_code == 200, url
        with Image.open(io.BytesIO(response.content)) as image:
            image.verify()
    assert await gateway.balance() == CREDITS - price


@pytest.mark.parametrize(("model", "route"), CASES)
async def test_model_through_route(sqlite_url: str, tmp_path: Path, model: str, route: str) -> None:
    async with _open(
        sqlite_url, tmp_path / "data", VendorTransport(), **one_route(model, route)
    ) as gateway:
        await _check(gateway, model, route, failure=GONE if route in RETIRED_UPSTREAM else None)


MULTI_OUTPUT = {
    "gpt-image-1.5": {"number_of_images": 2},
    "kling-image": {"n": 2},
    "qwen-image": {"num_images": 2},
}
"""Params asking the per-image-priced models for two images (one job, one price per image)."""

ONE_IMAGE_ROUTES = frozenset({"replicate:qwen/qwen-image"})
"""Routes whose upstream makes one image per call: the router never sends them several."""


@pytest.mark.parametrize(
    ("model", "route"),
    [
        pytest.param(spec.id, str(route), id=f"{spec.id}@{route}")
        for spec in CATALOG
        if spec.id in MULTI_OUTPUT
        for route in spec.routes
    ],
)
async def test_several_images_through_route(
    sqlite_url: str, tmp_path: Path, model: str, route: str
) -> None:
    settings = one_route(model, route)
    async with _open(sqlite_url, tmp_path / "data", VendorTransport(), **settings) as gateway:
        failure = "can take this job's params" if route in ONE_IMAGE_ROUTES else None
        await _check(gateway, model, route, MULTI_OUTPUT[model], failure)


@pytest.mark.parametrize(
    ("model", "route"),
    [
        ("midjourney", "midjourney:midjourney"),
        ("flux-2-pro", "bfl:flux-2-pro"),
        ("seedream-4", "fal:fal-ai/bytedance/seedream/v4/text-to-image"),
        ("dall-e-3", "openai:dall-e-3"),
    ],
)
async def test_on_every_database(database_url: str, tmp_path: Path, model: str, route: str) -> None:
    async with _open(
        database_url, tmp_path / "data", VendorTransport(), **one_route(model, route)
    ) as gateway:
        await _check(gateway, model, route, failure=GONE if route in RETIRED_UPSTREAM else None)


@pytest.mark.parametrize("model", [spec.id for spec in CATALOG if spec.retired_upstream])
async def test_retired_model_is_served_by_its_substitute(
    sqlite_url: str, tmp_path: Path, model: str
) -> None:
    """With the catalog's routes and substitutes on, every dead route fails over to the stand-in."""
    async with _open(sqlite_url, tmp_path / "data", VendorTransport()) as gateway:
        body, job = await _run(gateway, model)
        request = CATALOG.parse(body)
        assert job["status"] == "COMPLETED", job
        substitute = request.spec.substitutes[0]
        assert job["servedBy"] == {
            "provider": substitute.provider,
            "model": substitute.upstream_model,
        }
        assert job["creditCost"] == CATALOG.price(request.spec, request.params)
        assert len(job["result"]["images"]) == request.spec.outputs(request.params)


@pytest.mark.parametrize(
    ("model", "speed"),
    [
        ("ideogram-v3-turbo", "TURBO"),
        ("ideogram-v3-balanced", "BALANCED"),
        ("ideogram-v3-quality", "QUALITY"),
    ],
)
async def test_ideogram_v3_tier_reaches_fal(
    sqlite_url: str, tmp_path: Path, model: str, speed: str
) -> None:
    """The three v3 ids share one fal endpoint; the tier their price pays for must be asked for."""
    vendors = VendorTransport()
    settings = one_route(model, "fal:fal-ai/ideogram/v3")
    async with _open(sqlite_url, tmp_path / "data", vendors, **settings) as gateway:
        _body, job = await _run(gateway, model)
    assert job["status"] == "COMPLETED", job
    submits = [r for r in vendors.app("fal").state.requests if r["method"] == "POST"]
    assert [r["json"]["rendering_speed"] for r in submits] == [speed]


async def test_an_ideogram_4_ratio_reaches_replicate_as_the_resolution_of_that_shape(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Neither 4.0 upstream has an aspect ratio: Replicate is sent the resolution of that shape,
    which its fake (holding the model page's enum) accepts."""
    vendors = VendorTransport()
    settings = one_route("ideogram-v4-turbo", "replicate:ideogram-ai/ideogram-v4-turbo")
    async with _open(sqlite_url, tmp_path / "data", vendors, **settings) as gateway:
        _body, job = await _run(gateway, "ideogram-v4-turbo", {"aspect_ratio": "16:9"})
    assert job["status"] == "COMPLETED", job
    creates = [r for r in vendors.app("replicate").state.requests if r["method"] == "POST"]
    assert [r["json"]["input"] for r in creates] == [
        {"prompt": "a lighthouse at dawn", "resolution": "2560x1440"}
    ]
