"""Jobs a request waits for (``/v1/images/*``, ``Prefer: wait``), run in the request's own task.

When the process runs workers (``Runtime.local_worker``, the embedded ``serve``), a request that
waits for its job need not wait for a worker's claim: the job is written already claimed by this
process's worker, in the submit's transaction (``claim()`` → ``Submitter.generate(claim=)``), a
live job with its paid call already recorded in flight there (the "calling" record a worker
writes just before the call), and its step runs at once under that lease
(``Worker.run_claimed``): the same gates, the same completion (outputs, credits, events, webhook
row). A crash before or during the call leaves a lease that expires like any worker's, and the
worker that takes the job over counts the call as interrupted (``queue.runner``).

A step that completes the job answers from the job as it wrote it, without a read (and, for
``/v1``'s ``b64_json``, with the inline images it stored, not read back from the store); a step
that leaves it to the queue (a busy provider, a fail-over, a vendor to poll, a failure), a lost
lease (a cancel), a replayed Idempotency-Key and a process without workers are waited for as any
job (``JobService.wait``). ``imagegate_direct_jobs_total{outcome}`` counts the steps run here.
"""

from __future__ import annotations

import asyncio

from imagegate.observability.metrics import Metrics
from imagegate.queue.worker import Claim, Worker
from imagegate.services.accounts import Caller
from imagegate.services.jobs import JobService
from imagegate.services.submit import Accepted
from imagegate.store.jobs import JobRow

__all__ = ["DirectJobs"]


class DirectJobs:
    """Submit-and-wait for one request: ``claim()`` for its submit, then ``finish()``."""

    def __init__(self, *, jobs: JobService, metrics: Metrics, worker: Worker | None) -> None:
        self._jobs = jobs
        self._metrics = metrics
        self._worker = worker

    def claim(self) -> Claim | None:
        """The lease to write the job under; None when this process runs no worker (or its
        worker is stopping): the job is then left to the queue."""
        return self._worker.new_claim() if self._worker is not None else None

    async def finish(
        self,
        caller: Caller,
        accepted: Accepted,
        deadline: float,
        outputs: dict[str, bytes] | None = None,
    ) -> JobRow:
        """The job once finished, else as it stands at ``deadline`` (on the loop's clock).
        ``outputs`` receives the inline images a step run here stored (``JobRunner.run``)."""
        job = None
        if accepted.claimed is not None:
            job = await self._run_here(accepted.claimed, deadline, outputs)
        if job is None:
            left = max(0.0, deadline - asyncio.get_running_loop().time())
            job = await self._jobs.wait(caller, accepted.job_id, left)
        return job

    async def _run_here(
        self, claimed: JobRow, deadline: float, outputs: dict[str, bytes] | None
    ) -> JobRow | None:
        """Run the claimed job's step (a task of the local worker, which goes on if this wait
        ends first); the job when the step completed it by ``deadline``."""
        assert self._worker is not None
        try:
            async with asyncio.timeout_at(deadline):
                finished = await self._worker.run_claimed(claimed, outputs)
        except TimeoutError:
            return None
        self._metrics.direct_jobs.labels("completed" if finished else "queued").inc()
        return finished
