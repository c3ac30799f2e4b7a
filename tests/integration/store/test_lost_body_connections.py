"""PostgreSQL bodies on a pooled connection whose server session is gone (a restart, an
administrator's ``pg_terminate_backend``): a connection idle past the threshold is pinged and
replaced before its body runs; one used a moment ago is not pinged, so its body fails as
"unavailable" (a 503, a worker's retry) and every connection of the pool is replaced after it."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.store.db import ThreadedBodies, is_unavailable
from tests.conftest import _psycopg_dsn


async def session_of(conn: AsyncConnection) -> int:
    """The server session (backend pid) the body runs on; holds it 0.1 s, so bodies started
    together take different connections."""
    pid: int = await conn.scalar(text("SELECT pg_backend_pid() FROM pg_sleep(0.1)"))
    return pid


def terminate(url: str, *pids: int) -> None:
    with psycopg.connect(_psycopg_dsn(url), autocommit=True) as admin:
        for pid in pids:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


async def test_a_connection_idle_past_the_threshold_is_pinged_and_replaced(
    pg_database_url: str,
) -> None:
    bodies = ThreadedBodies(pg_database_url, threads=1, ping_idle_seconds=0.2)
    try:
        first = await bodies.write(session_of)
        terminate(pg_database_url, first)
        await asyncio.sleep(0.4)

        second = await bodies.write(session_of)

        assert second != first
    finally:
        await bodies.close()


async def test_lost_sessions_used_a_moment_ago_fail_one_body_then_the_pool_reconnects(
    pg_database_url: str,
) -> None:
    bodies = ThreadedBodies(pg_database_url, threads=2, ping_idle_seconds=60)
    try:
        before = set(await asyncio.gather(bodies.write(session_of), bodies.write(session_of)))
        assert len(before) == 2
        terminate(pg_database_url, *before)

        with pytest.raises(Exception) as failed:
            await bodies.write(session_of)
        assert is_unavailable(failed.value)

        after = set(await asyncio.gather(bodies.write(session_of), bodies.write(session_of)))
        assert len(after) == 2
        assert not after & before
    finally:
        await bodies.close()
