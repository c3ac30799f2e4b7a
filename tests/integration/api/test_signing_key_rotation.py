"""Rotating ``IMAGEGATE_SIGNING_SECRET`` without downtime: while the old secret is set as
``IMAGEGATE_SIGNING_SECRET_PREVIOUS``, result URLs handed out before the rotation still download;
once it is dropped they are refused, and the new secret signs throughout."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from tests.integration.conftest import SANDBOX_ROUTES, Gateway, open_gateway

BODY = {"model": "gpt-image-1.5", "prompt": "a kite", "gptImageParams": {"quality": "low"}}


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def result_url(gw: Gateway) -> str:
    response = await gw.submit(BODY, key=gw.live_key)
    assert response.status_code == 202, response.text
    job_id = response.json()["jobId"]
    await gw.drain()
    job = await gw.job(job_id, key=gw.live_key)
    url: str = job["result"]["images"][0]
    return url


async def test_urls_signed_before_a_rotation_download_until_the_old_secret_is_dropped(
    database_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shared = {"routes": SANDBOX_ROUTES}
    async with open_gateway(database_url, data, signing_secret="secret-one", **shared) as before:
        old_url = await result_url(before)
        first = await before.http.get(path_of(old_url))
        assert first.status_code == 200 and first.content

    async with open_gateway(
        database_url,
        data,
        signing_secret="secret-two",
        signing_secret_previous="secret-one",
        **shared,
    ) as during:
        downloaded = await during.http.get(path_of(old_url))
        assert downloaded.status_code == 200
        assert downloaded.content == first.content
        new_url = await result_url(during)
        assert (await during.http.get(path_of(new_url))).status_code == 200

    async with open_gateway(database_url, data, signing_secret="secret-two", **shared) as after:
        assert (await after.http.get(path_of(old_url))).status_code == 403
        assert (await after.http.get(path_of(new_url))).status_code == 200

    # The previous secret only verifies: a URL signed with it after the rotation is refused by a
    # node that has dropped it, which proves the rotating node never signed with it.
    async with open_gateway(database_url, data, signing_secret="secret-one", **shared) as old:
        assert (await old.http.get(path_of(new_url))).status_code == 403
