"""A small put to a local directory is written in place, as obstore would write it; a large
one, or one under a key obstore spells otherwise on disk, goes through obstore's threads.

A job's answer waits for its image to be stored: writing it in place costs less than handing
it to obstore's runtime threads and back. A large one would hold the event loop too long.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from imagegate.settings import Settings
from imagegate.storage.factory import create_object_store
from imagegate.storage.obstore_backend import IN_PLACE_BYTES, ObstoreObjectStore
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


async def test_a_small_put_is_written_in_place_as_obstore_writes_it(tmp_path: Path) -> None:
    store = local_store(tmp_path)

    count, stored = await suspensions(store.put("outputs/job-1/1.png", SMALL, "image/png"))

    assert count == 0
    assert (tmp_path / "outputs/job-1/1.png").read_bytes() == SMALL
    assert [path.name for path in (tmp_path / "outputs/job-1").iterdir()] == ["1.png"]
    assert await store.get("outputs/job-1/1.png") == SMALL
    head = await store.head("outputs/job-1/1.png")
    assert (head.size, head.content_type, head.etag) == (len(SMALL), "image/png", stored.etag)


async def test_a_large_put_and_an_odd_key_go_through_obstore(tmp_path: Path) -> None:
    store = local_store(tmp_path)
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
    (tmp_path / "outputs/job-1/1.png").mkdir(parents=True)  # a directory where the file goes
    (tmp_path / "outputs/job-1/1.png/x").write_bytes(b"x")

    with pytest.raises(Exception):  # noqa: B017 (obstore and the OS raise different types)
        await store.put("outputs/job-1/1.png", SMALL, "image/png")

    assert [path.name for path in (tmp_path / "outputs/job-1").iterdir()] == ["1.png"]
    assert [key async for key in store.keys()] == ["outputs/job-1/1.png/x"]  # noqa: SIM118
