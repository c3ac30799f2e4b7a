"""The SeaweedFS test server itself: it checks signatures, isolates runs and fails loudly."""

from __future__ import annotations

import uuid
from pathlib import Path

import obstore
import pytest
from obstore.store import S3Store

from imagegate.testing.seaweed import (
    S3Server,
    SeaweedUnavailable,
    create_bucket,
    seaweedfs_server,
)


def s3_store(server: S3Server, bucket: str) -> S3Store:
    return S3Store(
        bucket,
        endpoint=server.endpoint,
        region=server.region,
        access_key_id=server.access_key,
        secret_access_key=server.secret_key,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )


def test_create_bucket_makes_a_usable_bucket(seaweed: S3Server) -> None:
    bucket = f"made-{uuid.uuid4().hex[:12]}"

    create_bucket(seaweed, bucket)

    obstore.put(s3_store(seaweed, bucket), "a/b.txt", b"hello")
    assert bytes(obstore.get(s3_store(seaweed, bucket), "a/b.txt").bytes()) == b"hello"


def test_create_bucket_is_refused_with_the_wrong_secret(seaweed: S3Server) -> None:
    impostor = S3Server(seaweed.endpoint, seaweed.access_key, "not-the-secret", seaweed.region)

    with pytest.raises(RuntimeError, match="403"):
        create_bucket(impostor, f"nope-{uuid.uuid4().hex[:12]}")


def test_create_bucket_reports_an_invalid_name(seaweed: S3Server) -> None:
    with pytest.raises(RuntimeError, match="InvalidBucketName"):
        create_bucket(seaweed, "ab")


@pytest.mark.slow
def test_two_servers_run_side_by_side_with_separate_data(seaweed: S3Server, tmp_path: Path) -> None:
    bucket = f"twin-{uuid.uuid4().hex[:12]}"
    create_bucket(seaweed, bucket)
    obstore.put(s3_store(seaweed, bucket), "only-here.txt", b"first server")

    with seaweedfs_server(tmp_path / "second") as second:
        assert second.endpoint != seaweed.endpoint
        create_bucket(second, bucket)
        with pytest.raises(FileNotFoundError):
            obstore.head(s3_store(second, bucket), "only-here.txt")

    assert obstore.head(s3_store(seaweed, bucket), "only-here.txt")["size"] == 12


def test_a_server_that_exits_is_an_error_with_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weed = tmp_path / "weed"
    weed.write_text("#!/bin/sh\necho 'cannot start: disk on fire'\nexit 3\n")
    weed.chmod(0o755)
    monkeypatch.setenv("IMAGEGATE_WEED_BIN", str(weed))

    with (
        pytest.raises(SeaweedUnavailable, match=r"exited with 3(.|\n)*disk on fire"),
        seaweedfs_server(tmp_path / "run"),
    ):
        pass


def test_a_missing_binary_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEGATE_WEED_BIN", str(tmp_path / "no-such-weed"))

    with pytest.raises(SeaweedUnavailable, match="no-such-weed"), seaweedfs_server(tmp_path):
        pass
