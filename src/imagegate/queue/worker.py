"""The worker: claims due jobs and runs them concurrently, each under a renewed lease.

One ``Worker`` keeps up to ``concurrency`` jobs in flight, each an asyncio task: a job waiting on
its upstream (or on a provider lease) costs a coroutine, not a process or a thread, so this
number is sized by the providers' caps (``Settings.in_flight_limit``), while the CPU-side work
(decoding and storing images) is bounded separately by the runner. The worker claims as many
jobs as it has room for, in one statement, sleeps until woken (a submit, a finished job) or
``poll_interval`` passes, and renews every lease it holds in one statement every third of the
lease TTL; a job whose lease was lost has its step cancelled (``lost_leases``). ``stop()``
stops claiming, lets running steps finish for up to the grace period, cancels the rest and
releases every lease this worker still holds so peers take over at once. ``drain()`` is the
test seam: run everything due now, until nothing is.

A job may also be claimed where it is inserted: an API process that runs workers runs a
``/v1`` call's job in the request's own task, without waiting for a claim. ``new_claim()`` is
the lease (this worker's owner, a fresh token, the same TTL) that ``claims.claim_job`` writes in
the submit's transaction, and ``run_claimed(job)`` runs the job's step as a claimed one: its
lease renewed by the heartbeat, waited for (or cancelled past the grace) at shutdown, and, if
the process dies mid-step, expiring so that any worker takes the job over as it would a dead
worker's.

A database outage stops claiming, never the worker: its ``Outage`` logs the start and the end
once, the claim is retried with back-off, and running steps keep their leases by the heartbeat
as soon as the database answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import uuid
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.errors import ServiceUnavailable
from imagegate.queue import claims
from imagegate.queue.runner import JobRunner
from imagegate.queue.wakeup import Wakeup
from imagegate.store.db import Body, Database
from imagegate.store.jobs import JobRow
from imagegate.supervisor import Outage
from imagegate.types import Clock

__all__ = ["Claim", "Worker", "lost_leases"]

log = structlog.get_logger("imagegate.worker")


def lost_leases(
    running: Mapping[str, str], renewed: Mapping[str, str], unseen: AbstractSet[str]
) -> tuple[list[str], set[str]]:
    """Of the steps ``running`` (job id → lease token), those whose lease is lost, by what a
    heartbeat ``renewed``; and the jobs the heartbeat did not find, for the next one.

    A job held under another token was claimed again: its step stops now. A job the heartbeat
    did not find was either taken over or has just written its last transition, which gives the
    lease up a moment before its step ends: it is lost only if its step is still running when
    the next heartbeat does not find it either (it was in ``unseen``).
    """
    lost: list[str] = []
    missing: set[str] = set()
    for job_id, token in running.items():
        held = renewed.get(job_id)
        if held == token:
            continue
        if held is None and job_id not in unseen:
            missing.add(job_id)
        else:
            lost.append(job_id)
    return lost, missing


@dataclass(frozen=True)
class Claim:
    """A lease for a job claimed where it is inserted (``claims.claim_job``)."""

    owner: str
    token: str
    lease_ms: int


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
        self._tasks: set[asyncio.Task[JobRow | None]] = set()
        self._claimed_elsewhere: set[asyncio.Task[JobRow | None]] = set()
        """Steps of ``run_claimed``: not counted against ``concurrency``, waited for at stop."""
        self._held: dict[str, tuple[str, asyncio.Task[JobRow | None]]] = {}
        """Jobs whose step runs now: id → (lease token, step task), renewed together."""
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._outage = outage or Outage("worker", initial=poll_interval)

    async def claim(self, limit: int) -> list[JobRow]:
        token, now = str(uuid.uuid4()), self._clock.now_ms()

        async def body(conn: AsyncConnection) -> list[JobRow]:
            return await claims.claim(
                conn, owner=self.owner, token=token, now=now, lease_ms=self._lease_ms, limit=limit
            )

        return await self._db.write_alone(body)

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

    def new_claim(self) -> Claim | None:
        """A lease for a job to claim as it is inserted; None once this worker is stopping."""
        if self._stopping.is_set():
            return None
        return Claim(self.owner, str(uuid.uuid4()), self._lease_ms)

    async def run_claimed(
        self, job: JobRow, outputs: dict[str, bytes] | None = None
    ) -> JobRow | None:
        """Run the step of ``job``, claimed with ``new_claim()``, as if this worker had claimed
        it; the job as written when the step COMPLETED it, else None (see ``JobRunner.run``).
        A ``call_started_at`` on ``job`` is the claim's mark of its first paid call
        (``claims.claim_job``): the step makes that call without writing it again.

        The step is this worker's task, not the caller's: a caller that stops waiting (a client
        gone, a wait cap) leaves it running. A step cancelled by this worker (its stop, past the
        grace) answers None too: its job is left to the queue. ``outputs``: see
        ``JobRunner.run``.
        """
        # The job has never run: a call in flight on it is the claim's own mark.
        step = self._start(job, call_marked=job.call_started_at is not None, outputs=outputs)
        self._claimed_elsewhere.add(step)
        try:
            return await asyncio.shield(step)
        except asyncio.CancelledError:
            caller = asyncio.current_task()
            if step.cancelled() and (caller is None or not caller.cancelling()):
                return None
            raise

    def _spawn(self, job: JobRow) -> None:
        self._tasks.add(self._start(job))

    def _start(
        self, job: JobRow, call_marked: bool = False, outputs: dict[str, bytes] | None = None
    ) -> asyncio.Task[JobRow | None]:
        """Run the step of ``job`` in a task of its own, its lease renewed by the heartbeat.

        The step's task is the job's only task: with thousands of jobs waiting on their
        vendors, every object a job holds while it waits is walked by each full garbage
        collection, which stops the event loop (so no wrapper task, no ``asyncio.wait``).
        """
        assert job.lease_token is not None
        step = asyncio.create_task(
            self._runner.run(job, call_marked=call_marked, outputs=outputs), name=f"job-{job.id}"
        )
        self._held[job.id] = (job.lease_token, step)
        step.add_done_callback(functools.partial(self._stepped, job.id))
        self._ensure_heartbeat()
        return step

    def _stepped(self, job_id: str, step: asyncio.Task[JobRow | None]) -> None:
        """A step ended: it finished, or was cancelled (its lease lost, or this worker stopping
        past its grace). Its lease is no longer renewed; a free slot or a job left to the queue
        wakes the claim loop."""
        if self._held.get(job_id, (None, None))[1] is step:
            del self._held[job_id]
        if step in self._tasks:
            self._tasks.discard(step)
            self._wakeup.notify()
        elif step in self._claimed_elsewhere:
            self._claimed_elsewhere.discard(step)
            if step.cancelled() or step.exception() or step.result() is None:
                self._wakeup.notify()  # put back for later, or lost: the queue's job now

    def _ensure_heartbeat(self) -> None:
        if self._heartbeat_task is None or self._heartbeat_task.done():
            self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="lease-heartbeat")

    async def _heartbeat(self) -> None:
        """Renew every lease this worker holds, in one statement, every third of the TTL."""
        interval = self._lease_ms / 3000
        unseen: set[str] = set()
        while self._held:
            await asyncio.sleep(interval)
            unseen = await self._beat(unseen)

    async def _beat(self, unseen: set[str]) -> set[str]:
        """One renewal; the jobs it did not find, for the next (see ``lost_leases``).

        Its copy of the steps held ends with it, before the heartbeat sleeps: kept across the
        sleep, it would keep every step that finished meanwhile alive (its task, coroutine and
        job) until the next beat, then free them all in one callback, thousands when a burst
        of vendors answers together.
        """
        held = dict(self._held)
        if not held:
            return unseen
        try:
            renewed = await self._db.write_alone(self._renewing(self._clock.now_ms()))
        except ServiceUnavailable:
            return unseen
        running = {job_id: token for job_id, (token, step) in held.items() if not step.done()}
        lost, unseen = lost_leases(running, renewed, unseen)
        for job_id in lost:
            log.warning("worker.lease_lost", job_id=job_id)
            held[job_id][1].cancel()
        return unseen

    def _renewing(self, now: int) -> Body[dict[str, str]]:
        """The heartbeat's one statement: the rows of every job in flight stay locked only
        while it runs, not across a transaction's trips (a completion waits for them)."""

        async def renew(conn: AsyncConnection) -> dict[str, str]:
            return await claims.renew_owner(conn, self.owner, now, self._lease_ms)

        return renew

    async def _shutdown(self) -> None:
        running = self._tasks | self._claimed_elsewhere
        if running:
            _, pending = await asyncio.wait(running, timeout=self._grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        await self._stop_heartbeat()
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
            running = [self._start(job) for job in claimed]
            try:
                await asyncio.wait(running)
            finally:
                for step in running:
                    step.cancel()  # none is left running when this drain itself is cancelled
                await asyncio.wait(running)
                await self._stop_heartbeat()
            for step in running:
                if not step.cancelled():  # cancelled: its lease was lost
                    step.result()  # a step that crashed fails the drain
            steps += len(claimed)
        return steps

    async def _stop_heartbeat(self) -> None:
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
            self._heartbeat_task = None
