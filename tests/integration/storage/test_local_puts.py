"""A small put to a local directory, made while the process has nothing else to do, is written
in place as obstore would write it; under load, a large one, or one under a key obstore spells
otherwise on disk goes through obstore's threads. A worker process writes a small one in place
busy or not.

A job's answer waits for its image to be stored: at one request at a time, writing it in place
costs less than handing it to obstore's runtime threads and back. With thousands of jobs
finishing together the loop has better things to do than wait on the disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from imagegate.settings import Settings
from imagegate.storage.factory import create_object_store
from imagegate.storage.obstore_backend import IN_PLACE_BYTES, QUIET_PUTS, ObstoreObjectStore
from imagegate.storage.port import StoredObject
from imagegate.storage.signing import UrlSigner
from imagegate.testing.clock import FakeClock

SMALL = bytes(range(256)) * (IN_PLACE_BYTES // 256)


async def suspensions(put: Coroutine[Any, Any, StoredObject]) -> tuple[int, StoredObject]:
    """Run ``put`` as a task would; how often it suspended (waited for another thread)."""
    count = 0
    while True:
        try:
            waited = put.send(None)
        except StopIteration as done:
            return count, done.value
        count += 1
        await asyncio.wait([waited])


def local_store(root: Path) -> ObstoreObjectStore:
    settings = Settings(storage_url=root.as_uri())
    return create_object_store(settings, UrlSigner(b"s" * 32, "http://gateway.test", FakeClock()))


async def quiet_puts(store: ObstoreObjectStore) -> None:
    """The puts in a row, with nothing else to do, after which one is written in place."""
    for n in range(QUIET_PUTS):
        await store.put(f"outputs/warm-{n}/1.png", SMALL, "image/png")


async def test_a_small_put_with_nothing_else_to_do_is_written_in_place(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    await quiet_puts(store)

    count, stored = await suspensions(store.put("outputs/job-1/1.png", SMALL, "image/png"))

    assert count == 0
    assert (tmp_path / "outputs/job-1/1.png").read_bytes() == SMALL
    assert [path.name for path in (tmp_path / "outputs/job-1").iterdir()] == ["1.png"]
    assert await store.get("outputs/job-1/1.png") == SMALL
    head = await store.head("outputs/job-1/1.png")
    assert (head.size, head.content_type, head.etag) == (len(SMALL), "image/png", stored.etag)


async def test_a_put_while_other_work_waits_goes_through_obstore(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    await quiet_puts(store)
    loop = asyncio.get_running_loop()

    loop.call_soon(lambda: None)  # another job's callback, ready to run
    busy, _ = await suspensions(store.put("outputs/job-1/1.png", SMALL, "image/png"))
    after_busy, _ = await suspensions(store.put("outputs/job-2/1.png", SMALL, "image/png"))

    assert busy >= 1
    assert after_busy >= 1  # quiet again, but not yet for QUIET_PUTS puts in a row
    assert await store.get("outputs/job-1/1.png") == SMALL


async def test_a_large_put_and_an_odd_key_go_through_obstore(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    await quiet_puts(store)
    large = b"x" * (IN_PLACE_BYTES + 1)

    large_count, _ = await suspensions(store.put("outputs/job-1/1.png", large, "image/png"))
    odd_count, _ = await suspensions(store.put("outputs/a b/ü.png", SMALL, "image/png"))

    assert large_count >= 1 and odd_count >= 1
    assert await store.get("outputs/job-1/1.png") == large
    assert await store.get("outputs/a b/ü.png") == SMALL


async def test_a_put_that_cannot_be_renamed_into_place_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    store = local_store(tmp_path)
    await quiet_puts(store)
    (tmp_path / "outputs/job-1/1.png").mkdir(parents=True)  # a directory where the file goes
    (tmp_path / "outputs/job-1/1.png/x").write_bytes(b"x")

    with pytest.raises(OSError):
        await store.put("outputs/job-1/1.png", SMALL, "image/png")

    assert [path.name for path in (tmp_path / "outputs/job-1").iterdir()] == ["1.png"]
    keys = [key async for key in store.keys() if key.startswith("outputs/job-1/")]  # noqa: SIM118
    assert keys == ["outputs/job-1/1.png/x"]


async def test_a_worker_writes_a_small_put_in_place_while_other_work_waits(
    tmp_path: Path,
) -> None:
    settings = Settings(storage_url=tmp_path.as_uri())
    signer = UrlSigner(b"s" * 32, "http://gateway.test", FakeClock())
    store = create_object_store(settings, signer, busy_puts_in_place=True)
    loop = asyncio.get_running_loop()

    loop.call_soon(lambda: None)  # another job's callback, ready to run
    first, stored = await suspensions(store.put("outputs/ab/job-1-1.png", SMALL, "image/png"))
    large, _ = await suspensions(store.put("outputs/ab/job-2-1.png", SMALL * 2, "image/png"))

    assert first == 0  # no put before it, and the loop busy: written in place all the same
    assert large >= 1  # over IN_PLACE_BYTES: through obstore
    assert (tmp_path / "outputs/ab/job-1-1.png").read_bytes() == SMALL
    head = await store.head("outputs/ab/job-1-1.png")
    assert (head.size, head.content_type, head.etag) == (len(SMALL), "image/png", stored.etag)
