"""Waking idle workers when a job is submitted.

In one process (the embedded default) the API sets an ``asyncio.Event`` after commit. Across
processes on PostgreSQL the submit transaction runs ``NOTIFY imagegate_jobs`` (delivered at
commit) and every worker keeps a dedicated connection ``LISTEN``-ing, reconnecting when it drops.
Either way workers also poll every ``poll_interval`` seconds, so a lost signal only costs latency.

The same listener carries ``imagegate_job_events`` (payload: a job id) for
``imagegate.queue.events``, which tells readers in API processes that a job changed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import psycopg
import structlog
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["CHANNEL", "EVENTS_CHANNEL", "PostgresListener", "Wakeup", "notify_in_transaction"]

CHANNEL = "imagegate_jobs"
EVENTS_CHANNEL = "imagegate_job_events"
log = structlog.get_logger("imagegate.queue")


class Wakeup:
    """An in-process signal that work may be due."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a signal; True when one came."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._event.clear()


async def notify_in_transaction(conn: AsyncConnection) -> None:
    """Queue a NOTIFY that PostgreSQL delivers when the surrounding transaction commits."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text(f"NOTIFY {CHANNEL}"))


class PostgresListener:
    """Forwards ``NOTIFY imagegate_jobs`` to a ``Wakeup``, on its own psycopg connection.

    With ``on_job_changed``, also forwards ``imagegate_job_events`` payloads (job ids) to it;
    after each (re)connect it is called with None: any job may have changed meanwhile.
    """

    def __init__(
        self,
        database_url: str,
        wakeup: Wakeup | None,
        *,
        on_job_changed: Callable[[str | None], None] | None = None,
    ) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._wakeup = wakeup
        self._on_job_changed = on_job_changed
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="imagegate-listen")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True
                ) as conn:
                    if self._wakeup is not None:
                        await conn.execute(f"LISTEN {CHANNEL}")
                    if self._on_job_changed is not None:
                        await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    delay = 0.5
                    self._dispatch(None)  # anything that happened while we were away
                    async for note in conn.notifies():
                        self._dispatch(note.payload if note.channel == EVENTS_CHANNEL else "")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("queue.listen_failed", error=repr(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _dispatch(self, job_id: str | None) -> None:
        """``""``: work may be due; a job id: that job changed; None: both, for any job."""
        if self._wakeup is not None and not job_id:
            self._wakeup.notify()
        if self._on_job_changed is not None and job_id != "":
            self._on_job_changed(job_id)
