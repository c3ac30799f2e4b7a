"""``HeaderDeadline`` makes a loop timer only when none is pending: a keep-alive connection's
requests arm and disarm it without a timer each, and a wait armed again still ends on time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from imagegate.api.protocol import HeaderDeadline

SECONDS = 0.3


@contextlib.asynccontextmanager
async def connection() -> AsyncIterator[asyncio.Transport]:
    """A real TCP connection to a server that holds it open; its client transport."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    try:
        yield transport
    finally:
        transport.close()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.05)  # the server's side of the connection sees it closed


async def test_requests_on_one_connection_make_one_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    made: list[Any] = []
    call_at = loop.call_at

    def counted(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        made.append(callback)
        return call_at(when, callback, *args, **kwargs)

    async with connection() as transport:
        deadline = HeaderDeadline(SECONDS, transport)
        monkeypatch.setattr(loop, "call_at", counted)
        for _ in range(100):  # a request's headers complete, its response completes
            deadline.arm()
            deadline.disarm()
        deadline.arm()
        assert len(made) == 1
        await asyncio.sleep(SECONDS * 2)
        assert transport.is_closing()
        deadline.stop()


async def test_a_wait_armed_again_ends_at_its_own_deadline() -> None:
    async with connection() as transport:
        deadline = HeaderDeadline(SECONDS, transport)
        deadline.arm()
        await asyncio.sleep(SECONDS / 2)
        deadline.disarm()
        deadline.arm()  # the next request on the connection: SECONDS from now
        await asyncio.sleep(SECONDS * 0.75)  # past the first wait's end
        assert not transport.is_closing()
        await asyncio.sleep(SECONDS)
        assert transport.is_closing()


async def test_a_disarmed_or_stopped_wait_closes_nothing() -> None:
    async with connection() as transport:
        deadline = HeaderDeadline(SECONDS, transport)
        deadline.arm()
        deadline.disarm()
        await asyncio.sleep(SECONDS * 1.5)
        assert not transport.is_closing()
        deadline.arm()
        deadline.stop()
        await asyncio.sleep(SECONDS * 1.5)
        assert not transport.is_closing()
