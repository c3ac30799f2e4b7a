"""Object stores under test: a local directory, memory, and a real SeaweedFS S3 server.

SeaweedFS starts once per session (``seaweed``) and every test gets a bucket of its own
(``s3_bucket``), so tests never see each other's objects. ``object_store`` runs each test on every
backend, built through ``create_object_store`` exactly as the gateway builds it: ``s3`` hands out
presigned S3 URLs, ``s3-gateway`` gateway-signed ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagegate.settings import Settings
from imagegate.storage.factory import create_object_store
from imagegate.storage.obstore_backend import ObstoreObjectStore
from imagegate.storage.signing import UrlSigner
from imagegate.testing.clock import FakeClock
from imagegate.testing.seaweed import S3Server, create_bucket, seaweedfs_server

GATEWAY_BASE = "http://gateway.test"
SIGNING_SECRET = b"storage-test-secret"
BACKENDS = ["local", "memory", "s3", "s3-gateway"]


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One SeaweedFS server (master, volume, filer, S3) for the whole session."""
    with seaweedfs_server(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def s3_bucket(seaweed: S3Server) -> str:
    """A new, empty bucket on the session's SeaweedFS server."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    create_bucket(seaweed, name)
    return name


@pytest.fixture
def s3_storage_settings(seaweed: S3Server, s3_bucket: str) -> dict[str, Any]:
    """``Settings`` fields that put a gateway's storage in this test's bucket (presigned URLs)."""
    return {
        "storage_url": f"s3://{s3_bucket}/imagegate",
        "storage_options": seaweed.storage_options(),
        "storage_url_mode": "presigned",
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def signer(clock: FakeClock) -> UrlSigner:
    return UrlSigner(SIGNING_SECRET, GATEWAY_BASE, clock)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Which backend ``object_store`` is; tests read it only to know what URL to expect."""
    name: str = request.param
    return name


@pytest.fixture
def object_store(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, signer: UrlSigner
) -> ObstoreObjectStore:
    fields: dict[str, Any] = {"data_dir": tmp_path / "data"}
    if backend == "local":
        fields["storage_url"] = (tmp_path / "files").as_uri()
    elif backend == "memory":
        fields["storage_url"] = "memory://"
    else:
        fields.update(request.getfixturevalue("s3_storage_settings"))
        fields["storage_url_mode"] = "presigned" if backend == "s3" else "gateway"
    return create_object_store(Settings(**fields), signer)
