"""Where outputs are stored: 256 shared directories, no directory per job.

A directory costs a local disk as much as the file in it, and one per job stayed behind empty
once retention removed its files. Keys stored under the earlier layout (``outputs/<job
id>/<n>.<ext>``) are still served: a job keeps each output's key. A put killed halfway leaves
nothing under its key, in a shared directory as in a job's own.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from imagegate.providers.port import Finished, OutputImage
from imagegate.queue.ingest import OutputIngest
from imagegate.settings import Settings
from imagegate.storage.factory import create_object_store
from imagegate.storage.obstore_backend import IN_PLACE_BYTES, QUIET_PUTS, ObstoreObjectStore
from imagegate.storage.port import ObjectNotFound
from imagegate.storage.signing import UrlSigner
from imagegate.store import jobs as job_store
from imagegate.store.outputs import OutputRecord
from imagegate.store.tables import jobs
from imagegate.testing.clock import FakeClock
from tests.images import image_bytes
from tests.integration.conftest import Gateway

JOB_IDS = ["01a25187-31f0-748e-a2f6-2b427cfb08a2", "01a25187-6376-711c-8012-b54cbcb208a2"]
"""Two jobs whose ids end alike, so their outputs share a directory."""


def local_store(root: Path) -> ObstoreObjectStore:
    settings = Settings(storage_url=root.as_uri())
    return create_object_store(settings, UrlSigner(b"s" * 32, "http://gateway.test", FakeClock()))


async def test_outputs_share_directories_named_by_the_job_id(tmp_path: Path) -> None:
    ingest = OutputIngest(local_store(tmp_path), max_bytes=1 << 20)
    png, jpeg = image_bytes((32, 24), "blue"), image_bytes((24, 32), "red", "JPEG")
    try:
        first = await ingest.store(JOB_IDS[0], Finished(images=[OutputImage(data=png)]))
        second = await ingest.store(
            JOB_IDS[1], Finished(images=[OutputImage(data=png), OutputImage(data=jpeg)])
        )
    finally:
        await ingest.aclose()

    assert [record.key for record in first + second] == [
        f"outputs/a2/{JOB_IDS[0]}-1.png",
        f"outputs/a2/{JOB_IDS[1]}-1.png",
        f"outputs/a2/{JOB_IDS[1]}-2.jpg",
    ]
    assert [path.name for path in (tmp_path / "outputs").iterdir()] == ["a2"]
    shared = tmp_path / "outputs/a2"
    assert sorted(path.name for path in shared.iterdir()) == [
        f"{JOB_IDS[0]}-1.png",
        f"{JOB_IDS[1]}-1.png",
        f"{JOB_IDS[1]}-2.jpg",
    ]
    assert (shared / f"{JOB_IDS[1]}-2.jpg").read_bytes() == jpeg


async def test_retention_leaves_no_directory_per_job_behind(
    gateway: Gateway, tmp_path: Path
) -> None:
    body = {"model": "gpt-image-1.5", "prompt": "x", "gptImageParams": {"number_of_images": 2}}
    job_ids = [(await gateway.submit(body)).json()["jobId"] for _ in range(3)]
    await gateway.drain()
    gateway.clock.advance(31 * 86400)  # past the outputs' 30 days

    assert (await gateway.runtime.sweeper().sweep()).jobs == 3

    outputs = tmp_path / "data/files/outputs"
    shared = {job_id[-2:] for job_id in job_ids}
    assert sorted(path.name for path in outputs.iterdir()) == sorted(shared)
    assert list(outputs.glob("*/*")) == []


async def test_an_output_stored_under_the_earlier_layout_is_still_served(
    gateway: Gateway,
) -> None:
    job_id = (await gateway.submit({"model": "gpt-image-1.5", "prompt": "x"})).json()["jobId"]
    await gateway.drain()
    async with gateway.runtime.db.read() as conn:
        row = await job_store.get_job(conn, job_id)
    assert row is not None and row.outputs
    [record] = row.outputs
    image = await gateway.runtime.store.get(record.key)
    earlier = OutputRecord(
        f"outputs/{job_id}/1.png",
        record.content_type,
        record.byte_size,
        record.width,
        record.height,
        record.sha256,
    )
    await gateway.runtime.store.put(earlier.key, image, earlier.content_type)
    await gateway.runtime.store.delete(record.key)
    async with gateway.runtime.db.transaction() as conn:
        await conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(outputs=[earlier]))

    [url] = (await gateway.job(job_id))["result"]["images"]

    assert url.startswith(f"http://testserver/files/outputs/{job_id}/1.png?")
    download = await gateway.http.get(url)
    assert download.status_code == 200
    assert download.content == image
    assert download.headers["content-type"] == "image/png"


WRITTEN = 16 * 1024
"""Bytes a put writes before its process dies."""

CRASHING_PUT = """
import asyncio, resource, signal, sys
from pathlib import Path
from imagegate.settings import Settings
from imagegate.storage.factory import create_object_store
from imagegate.storage.obstore_backend import QUIET_PUTS
from imagegate.storage.signing import UrlSigner
from imagegate.testing.clock import FakeClock

root, key, size, written = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

async def main() -> None:
    signer = UrlSigner(b"s" * 32, "http://gateway.test", FakeClock())
    store = create_object_store(Settings(storage_url=root.as_uri()), signer)
    for n in range(QUIET_PUTS):  # a process with nothing else to do
        await store.put(f"warm/{n}.png", b"x", "image/png")
    # Writing past ``written`` bytes now kills the process mid-write, as a crash would.
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_FSIZE, (written, written))
    await store.put(key, bytes(size), "image/png")

asyncio.run(main())
"""


@pytest.mark.parametrize(
    "size", [IN_PLACE_BYTES // 2, IN_PLACE_BYTES * 4], ids=["written-in-place", "through-obstore"]
)
async def test_a_put_that_dies_halfway_leaves_nothing_under_its_key(
    tmp_path: Path, size: int
) -> None:
    key = f"outputs/a2/{JOB_IDS[0]}-1.png"
    argv = [sys.executable, "-c", CRASHING_PUT, str(tmp_path), key, str(size), str(WRITTEN)]
    put = subprocess.run(argv, timeout=60)

    assert put.returncode == -signal.SIGXFSZ
    [staged] = (tmp_path / "outputs/a2").iterdir()
    assert staged.name.startswith(f"{JOB_IDS[0]}-1.png#")
    assert staged.stat().st_size == WRITTEN
    store = local_store(tmp_path)
    stored = sorted([key async for key in store.keys()])  # noqa: SIM118
    assert stored == [f"warm/{n}.png" for n in range(QUIET_PUTS)]
    with pytest.raises(ObjectNotFound):
        await store.head(key)
