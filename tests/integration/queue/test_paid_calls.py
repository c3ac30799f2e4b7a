"""A paid upstream answer is bought once: unacceptable outputs fail at once, and a call cut off
before its answer follows the ``interrupted_calls`` policy (resubmitted once, or failed)."""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from imagegate.providers.port import (
    Finished,
    GenerationRequest,
    OutputImage,
)
from imagegate.queue.transitions import Lease
from imagegate.store import jobs as job_store
from tests.images import image_bytes
from tests.integration.conftest import Gateway, open_gateway
from tests.integration.vendors import SyncVendor

pytestmark = pytest.mark.timeout(30)

BODY = {"model": "gpt-image-1.5", "prompt": "p", "gptImageParams": {"quality": "low"}}


class CountingVendor(SyncVendor):
    """A synchronous vendor that answers every submit with ``image`` and counts the calls."""

    name = "counting"

    def __init__(self, image: bytes) -> None:
        super().__init__()
        self.image = image

    async def answer(self, request: GenerationRequest) -> Finished:
        return Finished(images=[OutputImage(data=self.image)])


@contextlib.asynccontextmanager
async def vendor_gateway(
    database_url: str, tmp_path: Path, vendor: CountingVendor, **settings: Any
) -> AsyncIterator[Gateway]:
    async with open_gateway(
        database_url,
        tmp_path,
        routes={"gpt-image-1.5": ["counting:model-x"]},
        adapters={"counting": vendor},
        **settings,
    ) as gw:
        yield gw


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


async def submit(gw: Gateway) -> str:
    response = await gw.submit(BODY, key=gw.live_key)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["jobId"]
    return job_id


@pytest.mark.parametrize(
    ("image", "max_bytes", "error"),
    [
        (png_header_only(100_000, 100_000), 50_000_000, "too many pixels"),
        (image_bytes((8, 8), "red", "BMP"), 50_000_000, "unsupported image format"),
        (b"%PDF-1.7 not a picture", 50_000_000, "not an image"),
        (image_bytes((64, 64), "red"), 60, "over 60 bytes"),
    ],
    ids=["decompression-bomb", "wrong-type", "not-an-image", "oversized"],
)
async def test_an_output_that_can_never_be_accepted_fails_at_once_refunded_after_one_call(
    database_url: str, tmp_path: Path, image: bytes, max_bytes: int, error: str
) -> None:
    vendor = CountingVendor(image)
    async with vendor_gateway(database_url, tmp_path, vendor, output_max_bytes=max_bytes) as gw:
        before = await gw.balance()
        job_id = await submit(gw)
        await gw.drain()
        job = await gw.job(job_id, key=gw.live_key)
        assert job["status"] == "FAILED"
        assert error in job["error"]
        assert vendor.submits == 1
        assert await gw.balance() == before


async def interrupt_a_call(gw: Gateway, job_id: str) -> None:
    """Leave ``job_id`` as a worker killed mid-call leaves it: leased, a call in flight; then
    let the lease expire."""
    crashed = gw.runtime.worker(concurrency=1, owner="crashed")
    [job] = await crashed.claim(1)
    assert job.id == job_id and job.lease_token is not None
    await gw.runtime.transitions.calling(Lease(job.id, job.lease_token), job)
    gw.clock.advance(gw.runtime.settings.lease_seconds + 1)


async def job_row(gw: Gateway, job_id: str) -> job_store.JobRow:
    async with gw.runtime.db.read() as conn:
        row = await job_store.get_job(conn, job_id)
    assert row is not None
    return row


async def events(gw: Gateway, job_id: str) -> list[str]:
    async with gw.runtime.db.read() as conn:
        return [event["kind"] for event in await job_store.list_events(conn, job_id)]


async def test_a_call_interrupted_by_a_crash_is_resubmitted_once_and_counted(
    database_url: str, tmp_path: Path
) -> None:
    vendor = CountingVendor(image_bytes())
    async with vendor_gateway(database_url, tmp_path, vendor) as gw:
        job_id = await submit(gw)
        await interrupt_a_call(gw, job_id)
        await gw.drain()
        job = await job_row(gw, job_id)
        assert job.status == "COMPLETED"
        assert vendor.submits == 1  # the resubmission; the cut-off call never answered here
        assert job.interrupted_calls == 1
        assert job.call_started_at is None
        assert "interrupted_call" in await events(gw, job_id)
        metrics = (await gw.http.get("/metrics")).text
        assert 'imagegate_interrupted_calls_total{outcome="resubmitted"} 1.0' in metrics


async def test_a_second_interrupted_call_fails_the_job_refunded(
    database_url: str, tmp_path: Path
) -> None:
    vendor = CountingVendor(image_bytes())
    async with vendor_gateway(database_url, tmp_path, vendor) as gw:
        before = await gw.balance()
        job_id = await submit(gw)
        await interrupt_a_call(gw, job_id)
        crashed_again = gw.runtime.worker(concurrency=1, owner="crashed-again")
        # The takeover records its own call, then dies too.
        [job] = await crashed_again.claim(1)
        assert job.lease_token is not None
        await gw.runtime.transitions.calling(Lease(job.id, job.lease_token), job, resubmitting=True)
        gw.clock.advance(gw.runtime.settings.lease_seconds + 1)
        await gw.drain()
        job = await job_row(gw, job_id)
        assert job.status == "FAILED"
        assert job.error_code == "interrupted_call"
        assert vendor.submits == 0
        assert await gw.balance() == before


async def test_under_the_fail_policy_an_interrupted_call_fails_the_job_refunded(
    database_url: str, tmp_path: Path
) -> None:
    vendor = CountingVendor(image_bytes())
    async with vendor_gateway(database_url, tmp_path, vendor, interrupted_calls="fail") as gw:
        before = await gw.balance()
        job_id = await submit(gw)
        await interrupt_a_call(gw, job_id)
        await gw.drain()
        job = await job_row(gw, job_id)
        assert job.status == "FAILED"
        assert job.error_code == "interrupted_call"
        assert "interrupted before its answer" in (job.error or "")
        assert vendor.submits == 0
        assert await gw.balance() == before
        metrics = (await gw.http.get("/metrics")).text
        assert 'imagegate_interrupted_calls_total{outcome="failed"} 1.0' in metrics


async def test_a_job_whose_call_returned_is_not_taken_for_an_interrupted_one(
    database_url: str, tmp_path: Path
) -> None:
    vendor = CountingVendor(image_bytes())
    async with vendor_gateway(database_url, tmp_path, vendor) as gw:
        job_id = await submit(gw)
        await gw.drain()
        job = await job_row(gw, job_id)
        assert job.status == "COMPLETED"
        assert job.interrupted_calls == 0 and job.call_started_at is None
        assert vendor.submits == 1
