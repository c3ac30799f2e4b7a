"""Keeping a process's background loops alive: outages are ridden out, crashes are restarted.

Every background loop (the job worker, the webhook sender, the retention sweeper) follows two
rules:

- **An outage is waited out, not fatal.** When the database or the object store cannot be
  reached, the loop keeps its ``Outage``: it logs one line when the outage starts and one when it
  ends (never one per retry), backs off exponentially up to a cap, and resumes by itself.
  ``LoopHealth`` shows the loop as ``outage`` meanwhile, so ``/readyz`` answers 503.
- **A crash is restarted.** ``Supervisor`` runs each loop as a task; a loop that raises anything
  else is logged and started again after a short back-off. Each loop may be restarted
  ``budget`` times within ``window_seconds``; one more crash exhausts the budget, the loop is
  marked ``failed`` and ``LoopHealth.failed`` is set, so the process stops and exits non-zero
  rather than serving half-alive.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import structlog

__all__ = ["LoopHealth", "LoopState", "LoopsFailed", "Outage", "Supervisor"]

log = structlog.get_logger("imagegate.supervisor")

LoopState = Literal["running", "outage", "restarting", "failed"]


class LoopsFailed(Exception):
    """A background loop exhausted its restart budget; the process must exit non-zero."""


class LoopHealth:
    """The state of every background loop of one process (read by ``/readyz``)."""

    def __init__(self) -> None:
        self._states: dict[str, LoopState] = {}
        self.failed = asyncio.Event()

    def set(self, loop: str, state: LoopState) -> None:
        self._states[loop] = state
        if state == "failed":
            self.failed.set()

    def forget(self, loop: str) -> None:
        self._states.pop(loop, None)

    def states(self) -> dict[str, LoopState]:
        return dict(self._states)

    def problems(self) -> dict[str, LoopState]:
        """Every loop that is not simply running."""
        return {loop: state for loop, state in self._states.items() if state != "running"}


class Outage:
    """One loop's view of an outage of what it depends on.

    ``failed(exc)`` returns how long to wait before the next try (``initial`` doubling up to
    ``cap``) and logs only the first failure; ``recovered()`` logs the end of an outage once.
    """

    def __init__(
        self,
        loop: str,
        *,
        health: LoopHealth | None = None,
        initial: float = 0.5,
        cap: float = 30.0,
    ) -> None:
        self.loop = loop
        self._health = health
        self._initial = initial
        self._cap = cap
        self._delay = initial
        self._since: float | None = None
        self._retries = 0

    @property
    def active(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException) -> float:
        if self._since is None:
            self._since = time.monotonic()
            self._delay = self._initial
            self._retries = 0
            log.warning("loop.outage_started", loop=self.loop, error=repr(exc))
            if self._health is not None:
                self._health.set(self.loop, "outage")
        else:
            self._delay = min(self._delay * 2, self._cap)
        self._retries += 1
        return self._delay

    def recovered(self) -> None:
        if self._since is None:
            return
        seconds = round(time.monotonic() - self._since, 3)
        log.warning("loop.outage_ended", loop=self.loop, seconds=seconds, retries=self._retries)
        self._since = None
        if self._health is not None:
            self._health.set(self.loop, "running")


class Supervisor:
    """Runs named loops and restarts each that crashes, within a restart budget.

    ``start(name, run)`` calls ``run()`` in a task; ``run`` returning means the loop was asked to
    stop. ``wait()`` returns once every loop has returned, or raises ``LoopsFailed`` as soon as
    one exhausted its budget (the others are left to the caller to stop).
    """

    def __init__(
        self,
        health: LoopHealth,
        *,
        budget: int = 5,
        window_seconds: float = 60.0,
        backoff_seconds: float = 1.0,
        backoff_cap_seconds: float = 30.0,
    ) -> None:
        self.health = health
        self._budget = budget
        self._window = window_seconds
        self._backoff = backoff_seconds
        self._backoff_cap = backoff_cap_seconds
        self._tasks: list[asyncio.Task[None]] = []
        self.restarts: collections.Counter[str] = collections.Counter()

    def start(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        self.health.set(name, "running")
        self._tasks.append(asyncio.create_task(self._keep(name, run), name=f"imagegate-{name}"))

    async def _keep(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        crashes: collections.deque[float] = collections.deque()
        while True:
            try:
                await run()
            except Exception:
                now = time.monotonic()
                crashes.append(now)
                while crashes and crashes[0] < now - self._window:
                    crashes.popleft()
                if len(crashes) > self._budget:
                    log.exception("loop.gave_up", loop=name, crashes=len(crashes))
                    self.health.set(name, "failed")
                    return
                delay = min(self._backoff * 2 ** (len(crashes) - 1), self._backoff_cap)
                log.exception("loop.crashed", loop=name, restart_in=delay)
                self.health.set(name, "restarting")
                self.restarts[name] += 1
                await asyncio.sleep(delay)
                self.health.set(name, "running")
            else:
                self.health.forget(name)
                return

    async def wait(self) -> None:
        """Until every loop returned; ``LoopsFailed`` as soon as one exhausted its budget."""
        if not self._tasks:
            return
        everything: asyncio.Future[list[None]] = asyncio.gather(*self._tasks)
        failed = asyncio.ensure_future(self.health.failed.wait())
        waiting: set[asyncio.Future[Any]] = {everything, failed}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
        if self.health.failed.is_set():
            raise LoopsFailed(", ".join(sorted(self.health.problems())))
        await everything

    async def join(self) -> None:
        """Until every loop task ended, whatever it ended with (after the loops were stopped)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)
