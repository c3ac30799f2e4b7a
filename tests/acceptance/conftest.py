"""Acceptance tests run ``imagegate`` as a user would: real processes, real sockets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from imagegate.store.migrate import upgrade_sync
from tests.conftest import own_pg_database

IMAGEGATE = str(Path(sys.executable).with_name("imagegate"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(**settings: str) -> dict[str, str]:
    """The environment for a child process: ours minus any IMAGEGATE_ setting, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
    env.update(settings)
    return env


def wait_until_healthy(base_url: str, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"imagegate exited with {process.returncode}")
        try:
            if httpx2.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("imagegate did not become healthy")


@pytest.fixture
def fresh_pg_url(pg_server_url: str) -> Iterator[str]:
    """A new, migrated PostgreSQL database of this test's own, dropped afterwards."""
    with own_pg_database(pg_server_url, "imagegate_nodes") as url:
        upgrade_sync(url)
        yield url
