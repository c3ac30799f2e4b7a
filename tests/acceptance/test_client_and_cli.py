"""The Python client and the CLI against a gateway started the way the README starts it."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from imagegate.client import ApiError, Client
from tests.acceptance.conftest import IMAGEGATE, child_env, free_port, wait_until_healthy
from tests.acceptance.test_serve import Served
from tests.images import image_bytes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    gateway = Served(tmp_path_factory.mktemp("served"), free_port())
    try:
        gateway.key("test")
        wait_until_healthy(gateway.base_url, gateway.process)
        yield gateway
    finally:
        gateway.stop()


def test_client_generates_waits_downloads_and_acts(served: Served) -> None:
    with Client(served.base_url, served.key("test")) as client:
        job_id = client.generate(
            "midjourney", "a castle in the clouds", fields={"midjourneyParams": {}}
        )
        seen: list[str] = []
        job = client.wait(job_id, interval=0.2, on_update=lambda j: seen.append(j["status"]))
        assert job["status"] == "COMPLETED"
        assert seen[-1] == "COMPLETED"
        assert len(job["result"]["images"]) == 4 and job["result"]["gridUrl"]
        image = Image.open(io.BytesIO(client.download(job["result"]["images"][0])))
        assert image.format == "PNG"

        upscale = client.wait(client.action("upsample", job_id, fields={"index": 2}), interval=0.2)
        assert upscale["status"] == "COMPLETED"
        assert len(upscale["result"]["images"]) == 1

        listed = client.jobs(limit=1)
        assert listed["jobs"][0]["id"] == upscale["id"]
        assert client.me()["team"]["credits"] == 500  # test keys are never charged

        upload = client.upload(image_bytes((64, 48), "navy"), "in.png")
        assert upload["contentType"] == "image/png"

        with pytest.raises(ApiError) as raised:
            client.generate("no-such-model", "x")
        assert raised.value.status == 400


def test_cli_generate_waits_and_saves_images(served: Served, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            IMAGEGATE,
            "generate",
            "gpt-image-1.5",
            "a red kite",
            "--param",
            "number_of_images=2",
            "--param",
            "output_format=jpeg",
            "--wait",
            "-o",
            str(tmp_path),
            "--url",
            served.base_url,
            "--key",
            served.key("test"),
        ],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    saved = sorted(tmp_path.iterdir())
    assert len(saved) == 2
    for path in saved:
        with Image.open(path) as image:
            assert image.format == "JPEG"

    listing = subprocess.run(
        [IMAGEGATE, "jobs", "list", "--url", served.base_url, "--key", served.key("test")],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert listing.returncode == 0, listing.stderr
    assert "gpt-image-1.5" in listing.stdout
