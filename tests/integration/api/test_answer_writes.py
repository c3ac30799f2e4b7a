"""An answer whose body is ready with its head leaves the server in one write, with either of
uvicorn's HTTP parsers; an answer whose body comes later still gets its head at once."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from imagegate.api.protocol import header_deadline_protocol

PAUSE = 0.3
BODY = b"x" * 1000


def _app(released: asyncio.Event) -> Any:
    """``/ready``: head and body at once, the loop held between them for ``PAUSE`` (as a busy
    loop would be); ``/later``: the head, then the body once ``released`` is set."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        length = str(len(BODY)).encode()
        headers = [(b"content-type", b"text/plain"), (b"content-length", length)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if scope["path"] == "/ready":
            time.sleep(PAUSE)  # the client reads whatever was sent before the body
        else:
            await released.wait()
        await send({"type": "http.response.body", "body": BODY})

    return app


@contextlib.asynccontextmanager
async def _serving(http: str, released: asyncio.Event | None = None) -> AsyncIterator[int]:
    config = uvicorn.Config(
        _app(released or asyncio.Event()),
        host="127.0.0.1",
        port=0,
        http=header_deadline_protocol(10.0, http=http),
        lifespan="off",
        log_config=None,
        access_log=False,
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


def _first_read(port: int, path: str, got: list[bytes]) -> None:
    """In a thread of its own: send one request, keep what the first ``recv`` returns."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        got.append(sock.recv(65536))


@pytest.fixture(params=["httptools", "h11"])
def http(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_an_answer_ready_at_once_arrives_in_one_piece(http: str) -> None:
    async with _serving(http) as port:
        got: list[bytes] = []
        reader = threading.Thread(target=_first_read, args=(port, "/ready", got))
        reader.start()
        while reader.is_alive():
            await asyncio.sleep(0.01)

    assert got[0].startswith(b"HTTP/1.1 200")
    assert got[0].endswith(b"\r\n\r\n" + BODY)


async def test_the_head_of_an_answer_whose_body_comes_later_is_sent_at_once(http: str) -> None:
    released = asyncio.Event()  # the body is only sent once the head has arrived
    async with _serving(http, released) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /later HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        released.set()
        body = await asyncio.wait_for(reader.readexactly(len(BODY)), timeout=5)
        writer.close()

    assert head.startswith(b"HTTP/1.1 200")
    assert body == BODY
