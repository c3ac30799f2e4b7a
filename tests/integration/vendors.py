"""A base for the tests' own synchronous vendors: adapters that answer within the submit."""

from __future__ import annotations

import abc

from imagegate.providers.port import Finished, GenerationRequest, Pending, TaskHandle


class SyncVendor(abc.ABC):
    """A synchronous vendor whose every submit answers ``answer(request)``; it counts the
    submits. It is never polled and has nothing to cancel or close."""

    name = "sync"
    supports_cancel = False

    def __init__(self) -> None:
        self.submits = 0

    async def submit(self, request: GenerationRequest) -> Finished:
        self.submits += 1
        return await self.answer(request)

    @abc.abstractmethod
    async def answer(self, request: GenerationRequest) -> Finished:
        """The submit's result."""

    async def poll(self, request: GenerationRequest, task: TaskHandle) -> Pending | Finished:
        raise AssertionError("a synchronous vendor is never polled")

    async def cancel(self, request: GenerationRequest, task: TaskHandle) -> None:
        return None

    async def aclose(self) -> None:
        return None
