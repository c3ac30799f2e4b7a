"""Waking idle workers when a job is submitted.

In one process (the embedded default) the API sets an ``asyncio.Event`` after commit. Across
processes on PostgreSQL the submit transaction runs ``NOTIFY imagegate_jobs`` (delivered at
commit) and every worker keeps a dedicated connection ``LISTEN``-ing, reconnecting when it drops.
Either way workers also poll every ``poll_interval`` seconds, so a lost signal only costs latency.
"""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import structlog
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["CHANNEL", "PostgresListener", "Wakeup", "notify_in_transaction"]

CHANNEL = "imagegate_jobs"
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
    """Forwards ``NOTIFY imagegate_jobs`` to a ``Wakeup``, on its own psycopg connection."""

    def __init__(self, database_url: str, wakeup: Wakeup) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._wakeup = wakeup
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
                    await conn.execute(f"LISTEN {CHANNEL}")
                    delay = 0.5
                    self._wakeup.notify()  # anything submitted while we were away
                    async for _ in conn.notifies():
                        self._wakeup.notify()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("queue.listen_failed", error=repr(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
