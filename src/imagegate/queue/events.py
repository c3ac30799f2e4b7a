"""Telling every API process that a job changed, so live streams and waits re-read it at once.

A signal carries only the job id: "job X changed". Readers (``GET /v2/jobs/{id}/events``,
``JobService.wait``) then read the ``jobs`` and ``job_events`` rows, so a lost signal costs
latency, never data; they also re-read every ``poll_seconds`` as the safety net.

How a signal travels, chosen once per process from the settings:

- always in-process, to the readers of this process (the embedded SQLite default needs no more);
- with ``redis_url`` set, Redis pub/sub on ``<prefix>:job_events``, published after commit;
- else on PostgreSQL, ``pg_notify('imagegate_job_events', id)`` inside the changing transaction,
  so it is delivered when (and only if) the change commits.

The cross-process listener is started lazily, by the first reader, so worker-only processes
never open it.

A second, in-process signal tells this process's webhook sender that a transition queued a
delivery (``deliveries_queued`` after the commit, ``watch_deliveries`` to wait for it), so a
finished job's webhook leaves at once rather than at the sender's next poll. It does not cross
processes: the process that finished the job holds a sender too, and other senders still poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import redis.asyncio as redis
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.queue.wakeup import EVENTS_CHANNEL, PostgresListener

__all__ = ["JobSignals"]

log = structlog.get_logger("imagegate.queue")


class JobSignals:
    """The change signal for jobs: ``changing``/``changed`` around a write, ``watch`` to read."""

    def __init__(
        self,
        *,
        database_url: str | None = None,
        redis_url: str | None = None,
        redis_prefix: str = "imagegate",
        poll_seconds: float = 2.0,
    ) -> None:
        self.poll_seconds = poll_seconds
        self._database_url = database_url
        self._postgres = bool(database_url) and str(database_url).startswith("postgresql")
        self._redis_url = redis_url
        self._redis_channel = f"{redis_prefix}:job_events"
        self._redis: redis.Redis | None = None
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._delivery_watchers: set[asyncio.Event] = set()
        self._listener: PostgresListener | None = None
        self._subscriber: asyncio.Task[None] | None = None

    # -- writers -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def transaction(
        self, begin: contextlib.AbstractAsyncContextManager[AsyncConnection], job_id: str
    ) -> AsyncIterator[AsyncConnection]:
        """Run ``begin`` (a transaction) and signal that ``job_id`` changed once it commits.

        A transaction that raises signals nothing.
        """
        async with begin as conn:
            yield conn
            await self.changing(conn, job_id)
        await self.changed(job_id)

    @property
    def channel(self) -> str | None:
        """The channel ``changing`` notifies inside the transaction (PostgreSQL without Redis),
        else None: a statement that notifies by itself (``claims.complete_job``) takes it."""
        return EVENTS_CHANNEL if self._postgres and not self._redis_url else None

    async def changing(self, conn: AsyncConnection, job_id: str) -> None:
        """Inside the transaction that changes the job: PostgreSQL delivers this at commit."""
        if self.channel is not None:
            await conn.execute(
                text("SELECT pg_notify(:channel, :job_id)"),
                {"channel": self.channel, "job_id": job_id},
            )

    async def changed(self, job_id: str) -> None:
        """After the commit: wake this process's readers, and publish on Redis when set."""
        self.notify(job_id)
        if self._redis_url:
            try:
                await self._client().publish(self._redis_channel, job_id)
            except Exception as exc:  # the safety-net poll still finds the change
                log.warning("events.publish_failed", error=repr(exc), job_id=job_id)

    def deliveries_queued(self) -> None:
        """After a commit that queued webhook deliveries: wake this process's senders."""
        for event in self._delivery_watchers:
            event.set()

    # -- readers -------------------------------------------------------------------------------

    def notify(self, job_id: str | None) -> None:
        """Wake the readers of ``job_id`` (of every job when None, e.g. after a reconnect)."""
        if job_id is None:
            groups = list(self._watchers.values())
        else:
            groups = [self._watchers.get(job_id, set())]
        for group in groups:
            for event in group:
                event.set()

    @contextlib.contextmanager
    def watch(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever ``job_id`` changes; clear it before each read of the job."""
        self._listen()
        event = asyncio.Event()
        self._watchers.setdefault(job_id, set()).add(event)
        try:
            yield event
        finally:
            group = self._watchers.get(job_id)
            if group is not None:
                group.discard(event)
                if not group:
                    del self._watchers[job_id]

    @contextlib.contextmanager
    def watch_deliveries(self) -> Iterator[asyncio.Event]:
        """An event set whenever this process queues a webhook delivery; clear it before each
        round of sending."""
        event = asyncio.Event()
        self._delivery_watchers.add(event)
        try:
            yield event
        finally:
            self._delivery_watchers.discard(event)

    async def next_change(self, event: asyncio.Event, timeout: float) -> None:
        """Return when ``event`` is set or after ``min(timeout, poll_seconds)``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), max(0.0, min(timeout, self.poll_seconds)))

    def _listen(self) -> None:
        if self._redis_url:
            if self._subscriber is None:
                self._subscriber = asyncio.create_task(
                    self._subscribe(), name="imagegate-job-events"
                )
        elif self._postgres and self._listener is None:
            assert self._database_url is not None
            self._listener = PostgresListener(self._database_url, None, on_job_changed=self.notify)
            self._listener.start()

    def _client(self) -> redis.Redis:
        if self._redis is None:
            assert self._redis_url is not None
            self._redis = redis.Redis.from_url(self._redis_url)
        return self._redis

    async def _subscribe(self) -> None:
        delay = 0.5
        while True:
            try:
                async with self._client().pubsub() as pubsub:
                    await pubsub.subscribe(self._redis_channel)
                    delay = 0.5
                    self.notify(None)  # anything that changed while we were away
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            data = message["data"]
                            self.notify(data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("events.subscribe_failed", error=repr(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def aclose(self) -> None:
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None
        if self._subscriber is not None:
            self._subscriber.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._subscriber
            self._subscriber = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
