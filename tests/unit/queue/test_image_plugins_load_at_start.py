"""The first image a process inspects costs no imports: Pillow's plugins load with the ingest,
at start-up, not inside the first job's step on the event loop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.images import image_bytes

PROBE = """
import sys
from obstore.store import LocalStore
from imagegate.queue.ingest import OutputIngest, inspect_image
from imagegate.storage.obstore_backend import ObstoreObjectStore
from imagegate.storage.signing import UrlSigner
from imagegate.testing.clock import FakeClock
store = ObstoreObjectStore(
    LocalStore(sys.argv[1], mkdir=True),
    UrlSigner(b"s" * 32, "http://127.0.0.1", FakeClock()),
    keeps_attributes=False,
)
OutputIngest(store, max_bytes=1 << 20)
image = sys.stdin.buffer.read()
before = set(sys.modules)
inspect_image(image)
print("imported:", ",".join(sorted(set(sys.modules) - before)))
"""


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_the_first_image_inspected_imports_nothing(tmp_path: Path, fmt: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)],
        input=image_bytes(fmt=fmt),
        capture_output=True,
        check=True,
    )
    assert done.stdout.decode().strip().splitlines()[-1] == "imported:"
