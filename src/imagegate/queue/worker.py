"""The worker: claims due jobs and runs them concurrently, each under a renewed lease.

One ``Worker`` runs ``concurrency`` jobs at a time as asyncio tasks. It claims only as many jobs
as it has free slots, sleeps until woken (a submit, a finished slot) or ``poll_interval`` passes,
and renews each held lease every third of its TTL while a step runs; a lease that cannot be
renewed cancels its step. ``stop()`` stops claiming, lets running steps finish for up to the grace
period, cancels the rest and releases every lease this worker still holds so peers take over at
once. ``drain()`` is the test seam: run everything due now, until nothing is.

A database outage stops claiming, never the worker: its ``Outage`` logs the start and the end
once, the claim is retried with back-off, and running steps keep their leases by the heartbeat
as soon as the database answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid

import structlog

from imagegate.errors import ServiceUnavailable
from imagegate.queue import claims
from imagegate.queue.runner import JobRunner
from imagegate.queue.wakeup import Wakeup
from imagegate.store.db import Database
from imagegate.store.jobs import JobRow
from imagegate.supervisor import Outage
from imagegate.types import Clock

__all__ = ["Worker"]

log = structlog.get_logger("imagegate.worker")


class Worker:
    def __init__(
        self,
        *,
        db: Database,
        runner: JobRunner,
        wakeup: Wakeup,
        clock: Clock,
        concurrency: int,
        lease_seconds: float,
        poll_interval: float,
        grace_seconds: float,
        owner: str | None = None,
        outage: Outage | None = None,
    ) -> None:
        self._db = db
        self._runner = runner
        self._wakeup = wakeup
        self._clock = clock
        self._concurrency = concurrency
        self._lease_ms = int(lease_seconds * 1000)
        self._poll_interval = poll_interval
        self._grace = grace_seconds
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._outage = outage or Outage("worker", initial=poll_interval)

    async def claim(self, limit: int) -> list[JobRow]:
        async with self._db.transaction() as conn:
            return await claims.claim(
                conn,
                owner=self.owner,
                token=str(uuid.uuid4()),
                now=self._clock.now_ms(),
                lease_ms=self._lease_ms,
                limit=limit,
            )

    async def run(self) -> None:
        """Claim and run jobs until ``stop()``."""
        log.info("worker.started", owner=self.owner, concurrency=self._concurrency)
        delay = self._poll_interval
        while not self._stopping.is_set():
            free = self._concurrency - len(self._tasks)
            claimed: list[JobRow] = []
            if free > 0:
                try:
                    claimed = await self.claim(free)
                    self._outage.recovered()
                    delay = self._poll_interval
                except ServiceUnavailable as exc:
                    delay = self._outage.failed(exc)
            for job in claimed:
                self._spawn(job)
            if len(claimed) < free or free <= 0:
                await self._wakeup.wait(delay)
        await self._shutdown()

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.notify()

    def _spawn(self, job: JobRow) -> None:
        task = asyncio.create_task(self._execute(job), name=f"job-{job.id}")
        self._tasks.add(task)

        def _done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            self._wakeup.notify()

        task.add_done_callback(_done)

    async def _execute(self, job: JobRow) -> None:
        step = asyncio.create_task(self._runner.run(job))
        heartbeat = asyncio.create_task(self._heartbeat(job, step))
        try:
            await asyncio.wait({step})  # returns even when the heartbeat cancelled the step
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            if not step.done():  # this task itself was cancelled (shutdown past its grace)
                step.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await step

    async def _heartbeat(self, job: JobRow, step: asyncio.Task[None]) -> None:
        assert job.lease_token is not None
        interval = self._lease_ms / 3000
        while True:
            await asyncio.sleep(interval)
            try:
                async with self._db.transaction() as conn:
                    held = await claims.renew(
                        conn, job.id, job.lease_token, self._clock.now_ms(), self._lease_ms
                    )
            except ServiceUnavailable:
                continue
            if not held:
                log.warning("worker.lease_lost", job_id=job.id)
                step.cancel()
                return

    async def _shutdown(self) -> None:
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self._grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        try:
            async with self._db.transaction() as conn:
                released = await claims.release_owner(conn, self.owner)
            log.info("worker.stopped", owner=self.owner, released=released)
        except ServiceUnavailable:
            log.warning("worker.stopped_without_release", owner=self.owner)

    async def drain(self, max_rounds: int = 1000) -> int:
        """Run every due job (and whatever becomes due at the same clock time); how many steps."""
        steps = 0
        for _ in range(max_rounds):
            claimed = await self.claim(self._concurrency)
            if not claimed:
                return steps
            await asyncio.gather(*(self._execute(job) for job in claimed))
            steps += len(claimed)
        return steps
