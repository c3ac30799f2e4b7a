"""The step machine one claimed job goes through: submit → poll → fetch/store → finish.

``run(job)`` does one step for a leased job and leaves it either finished (COMPLETED, FAILED) or
released with a future ``run_at`` (the next poll, a retry). What it persists, and when, is what
makes a crash at any point harmless:

- submit: before a paid call (any provider but the sandbox) the job records ``call_started_at``
  (a fenced write, or the claim's own write for a job claimed where it is inserted), so a
  worker that takes the job over can tell a call cut off by a crash from a fresh job. The
  upstream task id is committed (``submitted``) before the first poll, so a restarted job polls
  the same task and never submits twice. Synchronous vendors answer with images at once; those
  go straight to fetch/store.
- poll: progress and the vendor's advised delay; the lease is released between polls.
- fetch/store: outputs are stored under our keys, then one transaction records them, marks the
  job COMPLETED, captures the credits and queues the webhook. A job found at step ``fetch``
  (outputs recorded apart, by ``JobTransitions.fetched``) finishes from that record instead of
  asking upstream again.

**An upstream answer, once received, is never bought again.** The answer (a task id, or the
images) is paid for; losing it to a database or storage outage would make the next attempt buy
it again. So everything that records an answer — storing the images, then the ``submitted``,
``fetched`` and ``complete`` writes — is retried with back-off (``outage_backoff_seconds``
doubling up to ``outage_backoff_cap_seconds``) for as long as the outage lasts. Meanwhile the
worker's heartbeat keeps renewing the lease whenever the database answers, and the renewal is
fenced by the lease token, not by its expiry, so a lease that lapsed during the outage is still
ours unless another worker claimed the job first; a lost lease cancels the step
(``LeaseLost``) and the job belongs to the newer claim. The retrying stops at the job's
deadline (``deadline_at``): past it the answer is abandoned and whoever claims the job next
fails it as timed out, refunded, without calling upstream, since the deadline is checked before
any call.

**An output that can never be accepted** (not an image, a format we do not serve, a
decompression bomb, over ``output_max_bytes``) fails the job at once, refunded: asking again
would buy the same answer.

**A call interrupted before its answer arrived** (the worker crashed or was stopped mid-call,
so ``call_started_at`` is still set when the job is claimed again) follows
``settings.interrupted_calls``:

- ``resubmit_once`` (default): it is submitted again, once; the job counts it in
  ``interrupted_calls`` and an ``interrupted_call`` event, and ``imagegate_interrupted_calls``
  counts it by outcome. A second interrupted call fails the job, refunded.
- ``fail``: the job fails at once (``interrupted_call``), refunded, never submitted again.

Either way the vendor may have billed the cut-off call; that is the price of not knowing its
answer, and it is paid at most once per job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Literal, TypeVar

import structlog

from imagegate.errors import (
    ServiceUnavailable,
    UpstreamError,
    UpstreamMisconfigured,
    UpstreamRateLimited,
    UpstreamRetryable,
)
from imagegate.net.images import InputImageError
from imagegate.observability.metrics import NO_PROVIDER, Metrics
from imagegate.providers.pool import SANDBOX
from imagegate.providers.port import (
    GenerationRequest,
    Pending,
    ProviderAdapter,
    Submitted,
    TaskHandle,
)
from imagegate.queue.gates import DEFAULT_COOLDOWN_SECONDS, ProviderBusy, ProviderGates
from imagegate.queue.ingest import OutputStoreUnavailable
from imagegate.queue.transitions import JobTransitions, Lease, LeaseLost
from imagegate.store.jobs import JobRow
from imagegate.types import Clock, JobStep, Route

if TYPE_CHECKING:
    from imagegate.providers.pool import ProviderPool
    from imagegate.queue.ingest import OutputIngest
    from imagegate.queue.router import Router

__all__ = ["INTERRUPTED_CALL", "InterruptedCalls", "JobRunner"]

T = TypeVar("T")

InterruptedCalls = Literal["resubmit_once", "fail"]

INTERRUPTED_CALL = "interrupted_call"
"""The error code of a job failed because its upstream call was cut off before its answer."""

log = structlog.get_logger("imagegate.worker")


def generation_request(job: JobRow, route: Route) -> GenerationRequest:
    return GenerationRequest(
        job_id=job.id,
        model=job.model,
        route=route,
        prompt=job.prompt,
        params=job.params,
        outputs=job.outputs_expected,
        action=job.action or {},
    )


class JobRunner:
    def __init__(
        self,
        *,
        clock: Clock,
        router: Router,
        gates: ProviderGates,
        providers: ProviderPool,
        ingest: OutputIngest,
        transitions: JobTransitions,
        metrics: Metrics,
        interrupted_calls: InterruptedCalls = "resubmit_once",
        record_backoff_seconds: float = 0.5,
        record_backoff_cap_seconds: float = 10.0,
        cpu_slots: int = 8,
    ) -> None:
        # Decoding, checking and storing images is the CPU side of a job; the rest (upstream
        # calls, polls, database writes) only waits, so only this part is bounded here.
        self._cpu = asyncio.Semaphore(cpu_slots)
        self._metrics = metrics
        self._interrupted_calls = interrupted_calls
        self._record_backoff = record_backoff_seconds
        self._record_backoff_cap = record_backoff_cap_seconds
        self._clock = clock
        self._router = router
        self._gates = gates
        self._providers = providers
        self._ingest = ingest
        self._transitions = transitions

    async def run(
        self, job: JobRow, *, call_marked: bool = False, outputs: dict[str, bytes] | None = None
    ) -> JobRow | None:
        """Advance one leased job by one step. Never raises (except cancellation).

        ``call_marked``: the claim that leased the job recorded its first paid call in flight
        (``claims.insert_claimed_job(calling=True)``), so ``call_started_at`` is that call's
        mark, not one left by a call cut off before. The job as written when this step
        COMPLETED it, else None (it failed, was put back for a later step, or the lease was
        lost: read it to know).
        ``outputs``, when given, receives the bytes of each image this step stored that the
        vendor sent inline, by storage key: a caller that answers with the images (``/v1``'s
        ``b64_json``) need not read them back from the store.
        """
        assert job.lease_token is not None
        lease = Lease(job.id, job.lease_token)
        # Every line written while this step runs (adapters, ingest, transitions) names the job.
        # Bound and reset here rather than by ``bound_contextvars``, a generator: a job waiting
        # on its vendor keeps each object of its await chain alive, and every full garbage
        # collection walks them all (with thousands in flight, the event loop stops that long).
        bound = structlog.contextvars.bind_contextvars(job_id=job.id)
        try:
            with self._metrics.tracing.span(f"job.{job.step}", job.id, model=job.model):
                return await self._run(job, lease, call_marked, outputs)
        finally:
            structlog.contextvars.reset_contextvars(**bound)

    async def _run(
        self, job: JobRow, lease: Lease, call_marked: bool, outputs: dict[str, bytes] | None
    ) -> JobRow | None:
        try:
            return await self._step(job, lease, call_marked, outputs)
        except ProviderBusy as busy:
            self._metrics.deferrals.labels(busy.provider, busy.reason).inc()
            await self._guard(self._transitions.defer(lease, busy.retry_after, str(busy)))
        except LeaseLost:
            self._metrics.lease_losses.inc()
            log.warning("job.lease_lost", model=job.model, step=job.step)
        except ServiceUnavailable:
            # The lease expires; a worker retries.
            log.warning("job.database_unavailable", model=job.model, step=job.step)
        except UpstreamRateLimited as exc:
            # The provider asked us to wait: no attempt is spent, and while the cool-down is
            # long ``Router.choose`` sends the job to its next route instead.
            self._metrics.upstream_errors.labels(exc.provider or NO_PROVIDER, exc.code).inc()
            delay = exc.retry_after or DEFAULT_COOLDOWN_SECONDS
            await self._guard(self._transitions.defer(lease, delay, exc.message))
        except UpstreamRetryable as exc:
            self._metrics.upstream_errors.labels(exc.provider or NO_PROVIDER, exc.code).inc()
            await self._guard(self._transitions.retry(lease, job, exc))
        except UpstreamError as exc:
            self._metrics.upstream_errors.labels(exc.provider or NO_PROVIDER, exc.code).inc()
            await self._guard(
                self._transitions.fail(lease, job, exc.message, exc.code, provider=exc.provider)
            )
        except InputImageError as exc:
            # An input image the adapter had to download: unreachable now → retry; not an
            # image, too large, refused by the outbound guard → the job fails, refunded.
            if exc.retryable:
                await self._guard(self._transitions.retry(lease, job, UpstreamRetryable(str(exc))))
            else:
                await self._guard(self._transitions.fail(lease, job, str(exc), "invalid_input"))
        except Exception as exc:  # a bug: retried with backoff, bounded by max_attempts
            log.exception("job.step_crashed", model=job.model, step=job.step)
            error = UpstreamRetryable(
                f"Internal error while processing the job ({type(exc).__name__})"
            )
            await self._guard(self._transitions.retry(lease, job, error))
        return None

    async def _timed(self, provider: str, call: str, answer: Awaitable[T]) -> T:
        """``answer``, one upstream call, with its duration observed under its outcome: ``ok``
        or the error code."""
        started = time.monotonic()
        outcome = "ok"
        try:
            return await answer
        except UpstreamError as exc:
            outcome = exc.code
            raise
        except BaseException:  # a bug in the adapter, or the worker stopping mid-call
            outcome = "interrupted"
            raise
        finally:
            elapsed = time.monotonic() - started
            self._metrics.upstream_calls.labels(provider, call, outcome).observe(elapsed)

    async def _guard(self, write: object) -> None:
        try:
            await write  # type: ignore[misc]
        except (LeaseLost, ServiceUnavailable) as exc:
            log.warning("job.finish_write_lost", error=repr(exc))

    async def _record(self, job: JobRow, what: str, write: Callable[[], Awaitable[T]]) -> T:
        """Run ``write`` (which records an upstream answer) until it succeeds, retrying a
        database or storage outage with back-off until the job's deadline.

        Callers pass a ``functools.partial``, not a lambda: a lambda would make every variable
        it names a cell of the caller's frame, held for the whole step (the wait on the vendor
        included) by each job in flight."""
        delay = self._record_backoff
        retries = 0
        while True:
            try:
                result = await write()
            except (ServiceUnavailable, OutputStoreUnavailable) as exc:
                if self._clock.now_ms() + int(delay * 1000) >= job.deadline_at:
                    log.warning("job.answer_abandoned", job_id=job.id, what=what, error=repr(exc))
                    raise
                if retries == 0:
                    log.warning("job.answer_unrecorded", job_id=job.id, what=what, error=repr(exc))
                retries += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._record_backoff_cap)
                continue
            if retries:
                log.warning("job.answer_recorded", job_id=job.id, what=what, retries=retries)
            return result

    async def _interrupted(self, job: JobRow, lease: Lease) -> bool | None:
        """Whether this submit replaces a call cut off before its answer (``True``), or is the
        job's first (``False``); ``None`` when the policy failed the job instead."""
        if job.call_started_at is None:
            return False
        if self._interrupted_calls == "fail" or job.interrupted_calls >= 1:
            self._metrics.interrupted_calls.labels("failed").inc()
            message = "The upstream call was interrupted before its answer arrived"
            if job.interrupted_calls:
                message += f" ({job.interrupted_calls + 1} times)"
            await self._transitions.fail(lease, job, message, INTERRUPTED_CALL)
            return None
        return True

    async def _step(
        self, job: JobRow, lease: Lease, call_marked: bool, outputs: dict[str, bytes] | None
    ) -> JobRow | None:
        step = job.job_step
        if step is JobStep.CANCEL:
            await self._cancel_upstream(job, lease)
            return None
        if step is JobStep.FETCH:  # stored before a restart: finish from the record
            delivered = sum(1 for record in job.outputs or () if not record.grid)
            return await self._transitions.complete(lease, job, delivered)
        if self._clock.now_ms() >= job.deadline_at:
            await self._transitions.fail(lease, job, "Job timed out", "timeout")
            return None
        choice = await self._router.choose(job)
        route = choice.route
        request = generation_request(job, route)
        # The adapter is built inside the gate, so one that cannot be built from its options is
        # recorded like any other misconfigured call.
        if job.provider_task_id is None:
            resubmitting = False if call_marked else await self._interrupted(job, lease)
            if resubmitting is None:
                return None
            try:
                async with self._gates.call(route.provider, job.id):
                    adapter = self._providers.get(route.provider)
                    if route.provider != SANDBOX and not call_marked:
                        await self._transitions.calling(lease, job, resubmitting=resubmitting)
                        if resubmitting:
                            self._metrics.interrupted_calls.labels("resubmitted").inc()
                    submitted = await self._timed(route.provider, "submit", adapter.submit(request))
            except (UpstreamRetryable, UpstreamMisconfigured) as exc:
                # A route that is down, or that cannot serve at all (refused credentials, a
                # model retired upstream), hands the job to the next route; a short 429
                # cool-down waits for this one.
                if isinstance(exc, UpstreamRateLimited) and not self._router.wait_is_long(exc):
                    raise
                following = await self._router.next_index(job, choice.index)
                if following is None:
                    raise
                self._metrics.upstream_errors.labels(route.provider, exc.code).inc()
                await self._transitions.failover(lease, job, following, exc)
                return None
            if isinstance(submitted, Submitted):
                try:
                    await self._record(
                        job,
                        "task id",
                        partial(self._transitions.submitted, lease, route, submitted),
                    )
                except LeaseLost:
                    # Cancelled (or taken over) while the vendor accepted it: nobody will poll
                    # this task, so ask the vendor to stop it rather than let it run and bill.
                    await self._cancel_quietly(adapter, request, TaskHandle(submitted.task_id))
                    raise
                return None
            finished = submitted
        else:
            handle = TaskHandle(job.provider_task_id, job.provider_state or {})
            async with self._gates.call(route.provider, job.id):
                adapter = self._providers.get(route.provider)
                polled = await self._timed(route.provider, "poll", adapter.poll(request, handle))
            if isinstance(polled, Pending):
                await self._transitions.pending(lease, job, polled)
                return None
            finished = polled
        if not finished.images:
            raise UpstreamError("Provider returned no images", provider=route.provider)
        async with self._cpu:
            records = await self._record(
                job, "outputs", partial(self._ingest.store, job.id, finished)
            )
        if outputs is not None:  # the stored records come in the order of the images
            for record, image in zip(records, finished.images, strict=False):
                if image.data is not None:
                    outputs[record.key] = image.data
        if finished.served_model and finished.served_model != route.upstream_model:
            # The vendor ran another model than the route names (an alias, a pinned version):
            # the job records what really served it.
            route = Route(route.provider, finished.served_model)
        return await self._record(
            job,
            "completion",
            partial(
                self._transitions.complete,
                lease,
                job,
                len(finished.images),
                served_by=route.provider,
                stored=(route, records),
            ),
        )

    async def _cancel_quietly(
        self, adapter: ProviderAdapter, request: GenerationRequest, task: TaskHandle
    ) -> None:
        try:
            await adapter.cancel(request, task)
        except UpstreamError as exc:
            log.warning("job.orphan_cancel_failed", job_id=request.job_id, error=exc.message)

    async def _cancel_upstream(self, job: JobRow, lease: Lease) -> None:
        note = "no upstream task"
        if job.provider and job.provider_task_id:
            route = Route(job.provider, job.upstream_model or job.model)
            adapter = self._providers.get(route.provider)
            try:
                await adapter.cancel(
                    generation_request(job, route),
                    TaskHandle(job.provider_task_id, job.provider_state or {}),
                )
                note = "cancelled upstream" if adapter.supports_cancel else "provider has no cancel"
            except UpstreamError as exc:
                note = f"upstream cancel failed: {exc.message}"
        await self._transitions.cancelled_upstream(lease, note)
