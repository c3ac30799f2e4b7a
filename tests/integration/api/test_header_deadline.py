"""Connections that do not finish their request headers in time are closed, with either of
uvicorn's HTTP parsers; request bodies and answered keep-alive requests are not cut short."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from imagegate.api.protocol import header_deadline_protocol

DEADLINE = 0.6


async def _echo_app(scope: Any, receive: Any, send: Any) -> None:
    """Answers every request with the length of its body."""
    if scope["type"] != "http":
        return
    size = 0
    more = True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(size).encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def _serving(http: str) -> AsyncIterator[int]:
    config = uvicorn.Config(
        _echo_app,
        host="127.0.0.1",
        port=0,
        http=header_deadline_protocol(DEADLINE, http=http),
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port: int = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def _closed_after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> float:
    """Seconds until the server closes the connection, trickling one header byte every 0.1 s."""
    started = time.monotonic()
    trickle = asyncio.create_task(_trickle(writer))
    try:
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""
    finally:
        trickle.cancel()
        writer.close()
    return time.monotonic() - started


async def _trickle(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while True:
            writer.write(b"X")
            await writer.drain()
            await asyncio.sleep(0.1)


@pytest.fixture(params=["httptools", "h11"])
def http(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_trickled_headers_are_cut_off_at_the_deadline(http: str) -> None:
    async with _serving(http) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        seconds = await _closed_after(reader, writer)
    assert DEADLINE / 2 <= seconds <= DEADLINE + 2.0


async def test_the_wait_for_the_next_request_on_a_kept_alive_connection_is_bounded(
    http: str,
) -> None:
    async with _serving(http) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(DEADLINE / 2)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert await reader.readexactly(1) == b"0"
        await asyncio.sleep(DEADLINE / 2)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # a second request, never finished
        seconds = await _closed_after(reader, writer)
    assert seconds <= DEADLINE + 2.0


async def test_a_slow_body_after_complete_headers_is_not_cut_off(http: str) -> None:
    async with _serving(http) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
        for byte in b"hello":
            await asyncio.sleep(DEADLINE / 2)
            writer.write(bytes([byte]))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        assert head.startswith(b"HTTP/1.1 200")
        assert await reader.readexactly(1) == b"5"
        writer.close()


async def test_pipelined_requests_are_all_answered(http: str) -> None:
    async with _serving(http) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        for _ in range(3):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            assert head.startswith(b"HTTP/1.1 200")
            assert await reader.readexactly(1) == b"0"
        writer.close()
