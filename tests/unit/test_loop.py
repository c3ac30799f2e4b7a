"""Whether the event loop has anything waiting, asked cheaply however many sockets it serves."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from imagegate.loop import is_idle


@pytest.fixture
def ready_sockets() -> Iterator[Callable[[int], None]]:
    """Registers ``n`` sockets with data to read on the running loop."""
    pairs: list[tuple[socket.socket, socket.socket]] = []

    def make(n: int) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(n):
            ours, theirs = socket.socketpair()
            theirs.send(b"x")
            loop.add_reader(ours, lambda: None)
            pairs.append((ours, theirs))

    yield make
    for ours, theirs in pairs:
        ours.close()
        theirs.close()


async def test_a_loop_with_nothing_waiting_is_idle() -> None:
    assert is_idle(asyncio.get_running_loop())


async def test_a_callback_ready_to_run_is_waiting() -> None:
    loop = asyncio.get_running_loop()
    loop.call_soon(lambda: None)
    assert not is_idle(loop)


async def test_a_socket_ready_to_read_is_waiting(ready_sockets: Callable[[int], None]) -> None:
    ready_sockets(1)
    assert not is_idle(asyncio.get_running_loop())


async def test_many_ready_sockets_cost_no_more_than_one(
    ready_sockets: Callable[[int], None],
) -> None:
    """Hundreds of vendors answering together: the question is not a list of every ready socket."""
    loop = asyncio.get_running_loop()
    ready_sockets(400)
    selector = loop._selector  # type: ignore[attr-defined]

    def cost(ask: Callable[[], object]) -> float:
        """The fastest of five rounds of 50 asks: a round the machine preempted does not count."""
        rounds = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(50):
                ask()
            rounds.append(time.perf_counter() - started)
        return min(rounds)

    assert not is_idle(loop)
    assert cost(lambda: is_idle(loop)) < cost(lambda: selector.select(0)) / 20
