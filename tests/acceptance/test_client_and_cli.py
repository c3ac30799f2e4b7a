"""The Python client and the CLI against a gateway started the way the README starts it."""

from __future__ import annotations

import io
import json
import re
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
        seen: list[str] = []
        job = client.images.generate(
            model="midjourney",
            prompt="a castle in the clouds",
            params={},
            wait=60,
            on_progress=lambda j: seen.append(j.status),
        )
        assert job.status == "COMPLETED"
        assert seen[-1] == "COMPLETED"
        assert len(job.images) == 4 and job.grid_url
        image = Image.open(io.BytesIO(client.images.download(job.images[0]).content))
        assert image.format == "PNG"

        upscale = client.images.midjourney_action("upsample", job.id, fields={"index": 2}, wait=60)
        assert upscale.status == "COMPLETED"
        assert len(upscale.images) == 1

        listed = client.jobs.list(limit=1)
        assert listed.jobs[0].id == upscale.id
        assert client.me().team.credits == 500  # test keys are never charged

        upload = client.uploads.create(image_bytes((64, 48), "navy"), filename="in.png")
        assert upload.content_type == "image/png"

        with pytest.raises(ApiError) as raised:
            client.images.generate(model="no-such-model", prompt="x")
        assert raised.value.status == 400


def imagegate(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IMAGEGATE, *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_generate_waits_and_saves_images(served: Served, tmp_path: Path) -> None:
    result = imagegate(
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
    )
    assert result.returncode == 0, result.stdout + result.stderr
    job_id = result.stdout.splitlines()[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{job_id}-1.jpg", f"{job_id}-2.jpg"]
    for path in tmp_path.iterdir():
        with Image.open(path) as image:
            assert image.format == "JPEG"
    assert "100%" in result.stderr  # the progress bar, kept off stdout

    listing = imagegate("jobs", "list", "--url", served.base_url, "--key", served.key("test"))
    assert listing.returncode == 0, listing.stderr
    assert "gpt-image-1.5" in listing.stdout
    assert job_id in listing.stdout  # whole, at the 80 columns of a pipe, to copy into `jobs get`
    newest = imagegate(
        "jobs", "list", "--limit", "1", "--json", "--url", served.base_url,
        "--key", served.key("test"),
    )  # fmt: skip
    assert [json.loads(line)["id"] for line in newest.stdout.splitlines()] == [job_id]


def test_cli_json_params_file_and_watch(served: Served, tmp_path: Path) -> None:
    params_file = tmp_path / "params.json"
    params_file.write_text(json.dumps({"number_of_images": 3, "output_format": "webp"}))
    access = ("--url", served.base_url, "--key", served.key("test"))
    submitted = imagegate(
        "generate", "gpt-image-1.5", "a kite", "--params-file", str(params_file),
        "--param", "number_of_images=1", "--json", *access,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    queued = json.loads(submitted.stdout)
    assert queued["status"] == "QUEUED"

    watched = imagegate("jobs", "watch", queued["jobId"], "-o", str(tmp_path / "out"), *access)
    assert watched.returncode == 0, watched.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == [f"{queued['jobId']}-1.webp"]
    assert f"{queued['jobId']} COMPLETED" in watched.stderr  # said even with no bar drawn

    as_json = imagegate("jobs", "watch", queued["jobId"], "--json", *access)
    job = json.loads(as_json.stdout)
    assert job["status"] == "COMPLETED" and len(job["result"]["images"]) == 1
    assert job["input"]["gptImageParams"]["output_format"] == "webp"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("generate", "flux-2-pro", "x", "--key", "ig_test_nope"), "Invalid API key"),
        (("generate", "gpt-image-1.5", "x", "-p", "number_of_images=99"), "number_of_images"),
        (("jobs", "watch", "01900000-0000-7000-8000-000000000000"), "404"),
        (("generate", "flux-2-pro", "x", "--params-file", "/nonexistent.json"), "params-file"),
        (("generate", "flux-2-pro", "x", "--key", "ig_test_a\nb"), "api_key holds a line break"),
    ],
)
def test_cli_errors_are_one_line_on_stderr(
    served: Served, args: tuple[str, ...], says: str
) -> None:
    key = () if "--key" in args else ("--key", served.key("test"))
    result = imagegate(*args, "--url", served.base_url, *key)
    assert result.returncode != 0
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert says in result.stderr


def test_cli_says_in_one_line_when_the_gateway_cannot_be_reached() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = imagegate("generate", "flux-2-pro", "x", "--url", url, "--key", "ig_test_x")
    assert result.returncode == 1
    assert (
        result.stderr
        == f"error: cannot reach the gateway at {url}: [Errno 111] Connection refused\n"
    )


def test_serve_port_hands_out_result_urls_on_that_port(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [IMAGEGATE, "serve", "--port", str(port)],
            cwd=tmp_path,
            env=child_env(IMAGEGATE_SANDBOX_LATENCY_SECONDS="0.3"),  # no PUBLIC_BASE_URL
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base_url, process)
        key = re.search(r"test key: (\S+)", log.read_text())
        assert key, log.read_text()
        result = imagegate(
            "generate", "flux-2-pro", "a lighthouse", "--json", "-o", str(tmp_path / "out"),
            "--url", base_url, "--key", key.group(1),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        job = json.loads(result.stdout)
        assert job["result"]["images"][0].startswith(f"{base_url}/files/")
        assert len(job["files"]) == 1 and Path(job["files"][0]).stat().st_size > 0
    finally:
        process.terminate()
        process.wait(timeout=30)
