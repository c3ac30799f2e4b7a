"""On PostgreSQL the submits queued while a submit batch runs are written together: one
``submit_jobs`` statement for all of them, which commits by itself, each caller answered on its
own (a refusal, a replay, a conflict or a lost key race touches no other submit of the batch).

Each test holds the account's row lock from another session, so a first submit waits behind
it while the submits under test queue; released, they make the next batch."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import event, func, select, text

from imagegate.domain.idempotency import fingerprint
from imagegate.services import accounts as account_service
from imagegate.store import accounts
from imagegate.store import jobs as job_store
from imagegate.store.tables import ledger_entries
from tests.conftest import _truncate_pg, count_rows
from tests.integration.conftest import SANDBOX_ROUTES, Gateway, open_gateway
from tests.integration.limits.conftest import GPT, GPT_COST

Request = tuple[dict[str, Any], dict[str, str]]
"""A submit's body and its extra headers."""


@pytest.fixture
async def gw(pg_database_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    _truncate_pg(pg_database_url)
    settings: dict[str, Any] = {"routes": SANDBOX_ROUTES, "rate_limit_submit": ""}
    async with open_gateway(pg_database_url, tmp_path / "data", credits=0, **settings) as gw:
        yield gw


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(20):
        while not condition():
            await asyncio.sleep(0.005)


@contextlib.contextmanager
def statements_run(gw: Gateway) -> Iterator[tuple[list[str], list[int]]]:
    """The statements and commits of the database's body threads (``ThreadedBodies``)."""
    engine = gw.runtime.db._bodies()._engine
    statements: list[str] = []
    commits: list[int] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    def on_commit(_conn: Any) -> None:
        commits.append(1)

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    try:
        yield statements, commits
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "commit", on_commit)


@contextlib.asynccontextmanager
async def account_locked(gw: Gateway) -> AsyncIterator[None]:
    """Another session holds the account's row: every submit of the account waits for it."""
    async with gw.runtime.db.engine.connect() as conn, conn.begin():
        query = text("SELECT 1 FROM accounts WHERE id = :id FOR NO KEY UPDATE")
        await conn.execute(query, {"id": gw.account_id})
        yield


async def submitted_together(gw: Gateway, requests: list[Request]) -> list[httpx2.Response]:
    """The answers to ``requests``, all queued while a first submit (a test key's, which costs
    nothing) waits behind the account's lock: they make one batch."""
    queued = gw.runtime.db._bodies()._writes
    async with account_locked(gw):
        first = asyncio.create_task(gw.submit(GPT))
        await until(lambda: job_store.submit_many_postgres in queued)
        together = [
            asyncio.create_task(gw.submit(body, gw.live_key, **headers))
            for body, headers in requests
        ]
        await until(lambda: len(queued.get(job_store.submit_many_postgres, ())) == len(requests))
    assert (await first).status_code == 202
    return await asyncio.gather(*together)


async def reserves(gw: Gateway) -> int:
    async with gw.runtime.db.read() as conn:
        query = select(func.count()).where(ledger_entries.c.kind == "reserve")
        return int(await conn.scalar(query) or 0)


async def test_submits_queued_together_are_one_statement_that_commits_by_itself(
    gw: Gateway,
) -> None:
    await grant(gw, 10 * GPT_COST)
    with statements_run(gw) as (statements, commits):
        responses = await submitted_together(gw, [(GPT, {})] * 10)

    assert [response.status_code for response in responses] == [202] * 10
    # The first submit's batch, then the ten's: a statement each, committed by itself (no
    # COMMIT: a transaction's commit would be counted here).
    assert len(statements) == 2, statements
    assert all("submit_jobs" in statement for statement in statements), statements
    assert commits == []
    job_ids = {response.json()["jobId"] for response in responses}
    assert len(job_ids) == 10
    for job_id in job_ids:
        assert (await gw.job(job_id, gw.live_key))["status"] == "QUEUED"
    assert await gw.balance() == 0
    assert await reserves(gw) == 10


async def test_a_batchs_jobs_add_to_one_counter_row(gw: Gateway) -> None:
    """Each job a batch admits adds to the counter row of the batch's session (migration 0014),
    not a row of its own: the account has a row per session that submitted, whatever the jobs."""
    await grant(gw, 10 * GPT_COST)
    responses = await submitted_together(gw, [(GPT, {})] * 10)

    assert [response.status_code for response in responses] == [202] * 10
    async with gw.runtime.db.read() as conn:
        query = text(
            "SELECT count(*), sum(queued), sum(processing) FROM account_job_count_slots"
            " WHERE account_id = :id"
        )
        rows, queued, processing = (await conn.execute(query, {"id": gw.account_id})).one()
    # The first submit's batch and the ten's: one or two sessions.
    assert (queued, processing) == (11, 0)
    assert rows <= 2


async def test_a_cap_reached_within_a_batch_admits_exactly_up_to_it(gw: Gateway) -> None:
    await grant(gw, 10 * GPT_COST)
    await account_service.set_account_limits(
        gw.runtime.db, gw.account_id, {"max_concurrent_jobs": 5}
    )
    responses = await submitted_together(gw, [(GPT, {})] * 8)

    # The first submit is one of the five.
    assert [response.status_code for response in responses] == [202] * 4 + [429] * 4
    assert await count_rows(gw.runtime.db, "jobs") == 5
    assert await reserves(gw) == 4


async def test_each_submit_of_a_batch_gets_its_own_answer_and_only_its_own_charge(
    gw: Gateway,
) -> None:
    await grant(gw, 3 * GPT_COST)
    other = {**GPT, "prompt": "another kite"}
    with statements_run(gw) as (statements, _):
        responses = await submitted_together(
            gw,
            [
                (GPT, {"Idempotency-Key": "k"}),
                (other, {"Idempotency-Key": "k"}),  # the key again, another request: 409
                (GPT, {"Idempotency-Key": "r"}),
                (GPT, {"Idempotency-Key": "r"}),  # the same again: a replay, not charged
                (GPT, {}),
                (GPT, {}),  # the credits ran out: 402, nothing written
                (GPT, {"Idempotency-Key": "late"}),
            ],
        )

    assert [response.status_code for response in responses] == [202, 409, 202, 202, 202, 402, 402]
    assert len(statements) == 2, statements
    assert responses[3].json()["jobId"] == responses[2].json()["jobId"]
    assert responses[3].headers["Idempotent-Replayed"] == "true"
    assert await count_rows(gw.runtime.db, "jobs") == 1 + 3
    assert await gw.balance() == 0
    assert await reserves(gw) == 3
    async with gw.runtime.db.read() as conn:
        assert await accounts.ledger_sum(conn, gw.account_id) == 0
        # The refused submit's key was undone with it: the key is free for a new request.
        assert await job_store.find_idempotency(conn, gw.account_id, "late", 0) is None


async def test_a_submit_that_loses_a_key_race_in_a_batch_is_answered_in_it(gw: Gateway) -> None:
    """Another process holds the key uncommitted: the batch's submit of that key waits for it
    and, once it commits, finds the winner's record and replays it, in the batch (migration
    0018; before, it failed on the key and ran again alone)."""
    await grant(gw, 10 * GPT_COST)
    winner = "00000000-0000-7000-8000-000000000001"
    statements: list[str] = []
    async with gw.runtime.db.engine.connect() as rival:
        await rival.execute(
            text(
                "INSERT INTO idempotency_keys"
                " (account_id, key, fingerprint, job_id, created_at, expires_at)"
                " VALUES (:account, 'raced', :print, :job, 0, :forever)"
            ),
            {
                "account": gw.account_id,
                "print": fingerprint("/v2/images/generate", GPT),
                "job": winner,
                "forever": 2**62,
            },
        )

        rival_pid = await rival.scalar(text("SELECT pg_backend_pid()"))

        async def rival_commits_once_waited_on() -> None:
            await until_waiting_on(gw, rival_pid)
            await rival.commit()

        with statements_run(gw) as (statements, _):
            responses, _ = await asyncio.gather(
                submitted_together(gw, [(GPT, {}), (GPT, {"Idempotency-Key": "raced"}), (GPT, {})]),
                rival_commits_once_waited_on(),
            )

    assert [response.status_code for response in responses] == [202, 202, 202]
    assert responses[1].json()["jobId"] == winner
    assert responses[1].headers["Idempotent-Replayed"] == "true"
    # The first submit and the batch: no submit ran again alone.
    assert [statement.split("(")[0] for statement in statements] == [
        "SELECT * FROM submit_jobs",
        "SELECT * FROM submit_jobs",
    ]
    assert await reserves(gw) == 2


async def until_waiting_on(gw: Gateway, pid: int) -> None:
    """Until a session waits on a lock the session ``pid`` holds."""
    query = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    async with asyncio.timeout(20):
        while True:
            async with gw.runtime.db.engine.connect() as conn:
                if await conn.scalar(query, {"pid": pid}):
                    return
            await asyncio.sleep(0.01)


async def grant(gw: Gateway, credits: int) -> None:
    async with gw.runtime.db.transaction() as conn:
        await accounts.grant(conn, gw.account_id, credits, gw.clock.now_ms())
