"""A small output is hashed and measured on the event loop; a large one in a worker thread.

A hop to a thread costs more than reading a small image's header, and thousands of small images
finishing at once would otherwise keep a pool of threads contending with the loop for the GIL.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
from obstore.store import LocalStore

from imagegate.providers.port import Finished, OutputImage
from imagegate.queue import ingest
from imagegate.queue.ingest import INLINE_BYTES, OutputIngest
from imagegate.storage.obstore_backend import ObstoreObjectStore
from imagegate.storage.signing import UrlSigner
from imagegate.testing.clock import FakeClock
from imagegate.testing.large_images import large_png


@pytest.fixture
def threads_reading_headers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The thread of every image header read meanwhile."""
    seen: list[int] = []
    inspect = ingest.inspect_image

    def recorded(source: object) -> ingest.ImageInfo:
        seen.append(threading.get_ident())
        return inspect(source)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest, "inspect_image", recorded)
    return seen


@pytest.mark.parametrize(
    ("size", "on_the_loop"), [(INLINE_BYTES // 4, True), (INLINE_BYTES * 2, False)]
)
async def test_where_an_inline_output_is_examined(
    tmp_path: Path, threads_reading_headers: list[int], size: int, on_the_loop: bool
) -> None:
    store = ObstoreObjectStore(
        LocalStore(tmp_path, mkdir=True),
        UrlSigner(b"s" * 32, "http://127.0.0.1", FakeClock()),
        keeps_attributes=False,
    )
    outputs = OutputIngest(store, max_bytes=10 * INLINE_BYTES)
    image = large_png(size)
    try:
        [record] = await outputs.store("job-1", Finished(images=[OutputImage(data=image)]))
    finally:
        await outputs.aclose()

    assert record.sha256 == hashlib.sha256(image).hexdigest()
    assert record.byte_size == len(image) and record.content_type == "image/png"
    assert (tmp_path / record.key).read_bytes() == image
    assert (threads_reading_headers == [threading.get_ident()]) is on_the_loop
