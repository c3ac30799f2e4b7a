"""Slowloris against ``imagegate serve``: hundreds of connections trickling header bytes are all
closed at the header deadline, while ordinary requests keep being answered meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from pathlib import Path

import httpx2
import pytest

from tests.acceptance.conftest import IMAGEGATE, child_env, free_port, wait_until_healthy

pytestmark = pytest.mark.slow

CONNECTIONS = 400
HEADER_TIMEOUT = 2.0


async def _slow_client(port: int, closed_after: list[float]) -> None:
    """Opens a request and sends one more header byte every half second until cut off."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    try:
        while not reader.at_eof():
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(reader.read(1024), timeout=0.5) == b"":
                    break
            writer.write(b"x")
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
    closed_after.append(time.monotonic() - started)


async def _attack(port: int, base_url: str) -> tuple[list[float], list[float]]:
    closed_after: list[float] = []
    latencies: list[float] = []
    clients = [asyncio.create_task(_slow_client(port, closed_after)) for _ in range(CONNECTIONS)]
    async with httpx2.AsyncClient(base_url=base_url, timeout=5) as http:
        while not all(c.done() for c in clients):
            started = time.monotonic()
            assert (await http.get("/healthz")).status_code == 200
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.1)
    await asyncio.wait_for(asyncio.gather(*clients), timeout=HEADER_TIMEOUT * 5)
    return closed_after, latencies


def test_slow_header_connections_are_closed_while_requests_are_answered(tmp_path: Path) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [IMAGEGATE, "serve", "--no-workers"],
        cwd=tmp_path,
        env=child_env(
            IMAGEGATE_PORT=str(port),
            IMAGEGATE_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_healthy(base_url, process)
        closed_after, latencies = asyncio.run(_attack(port, base_url))
    finally:
        process.terminate()
        process.wait(timeout=30)

    assert len(closed_after) == CONNECTIONS
    # Measured from the client side on a shared machine: loose bounds around the deadline.
    assert min(closed_after) >= HEADER_TIMEOUT / 2
    assert max(closed_after) <= HEADER_TIMEOUT + 3.0
    assert len(latencies) >= 5
    assert max(latencies) < 2.0
