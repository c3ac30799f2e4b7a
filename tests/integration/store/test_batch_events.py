"""On PostgreSQL a batch of submits (``submit_jobs``) writes the ``queued`` events of the jobs it
admits in one insert at its end (migration 0020): one event per admitted job, with its submit's
time and cost, none for a refused submit or a replay, and one NOTIFY when it admitted a job."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from tests.conftest import _psycopg_dsn
from tests.integration.store.conftest import count_inserts, inserts_counted, submit_item


def submit_jobs(conn: psycopg.Connection[Any], submits: list[Any]) -> list[tuple[str, str]]:
    query = "SELECT outcome, job_id FROM submit_jobs(%s::jsonb) ORDER BY item"
    return [(row[0], row[1]) for row in conn.execute(query, (json.dumps(submits),))]


def events(conn: psycopg.Connection[Any]) -> list[tuple[str, int, str, Any]]:
    query = "SELECT job_id, at, kind, data FROM job_events ORDER BY id"
    return [tuple(row) for row in conn.execute(query)]


async def test_a_batch_writes_its_admitted_jobs_queued_events_in_one_insert(
    pg_database_url: str, account: str
) -> None:
    batch = [
        submit_item(account, cost=4, at=1_001, key="k"),
        submit_item(account, at=1_002),
        submit_item(account, cost=4, at=1_003, key="k"),  # a replay of the first
        submit_item(account, cost=4, at=1_004),
        submit_item(account, cost=4, at=1_005),  # 12 credits of 10: refused
        submit_item(account, at=1_006),
    ]
    with psycopg.connect(_psycopg_dsn(pg_database_url)) as conn:
        count_inserts(conn, "job_events")
        done = submit_jobs(conn, batch)

        assert [outcome for outcome, _ in done] == [
            "accepted", "accepted", "replayed", "accepted", "credits", "accepted",
        ]  # fmt: skip
        assert done[2][1] == done[0][1]
        assert events(conn) == [
            (done[0][1], 1_001, "queued", {"cost": 4}),
            (done[1][1], 1_002, "queued", {"cost": 0}),
            (done[3][1], 1_004, "queued", {"cost": 4}),
            (done[5][1], 1_006, "queued", {"cost": 0}),
        ]
        # One statement for the four; the refused submit's was undone with it before.
        inserts = inserts_counted(conn, "job_events")
        assert inserts == ("1",)
        conn.rollback()


async def test_a_batch_notifies_the_workers_when_it_admitted_a_job(
    pg_database_url: str, account: str
) -> None:
    dsn = _psycopg_dsn(pg_database_url)
    with (
        psycopg.connect(dsn, autocommit=True) as listener,
        psycopg.connect(dsn, autocommit=True) as conn,
    ):
        listener.execute("LISTEN imagegate_jobs")
        refused = submit_item(account, cost=11)  # more than the account's 10 credits
        assert [outcome for outcome, _ in submit_jobs(conn, [refused])] == ["credits"]
        assert list(listener.notifies(timeout=0.5)) == []

        assert [outcome for outcome, _ in submit_jobs(conn, [submit_item(account)])] == ["accepted"]
        assert [n.channel for n in listener.notifies(timeout=5, stop_after=1)] == ["imagegate_jobs"]
