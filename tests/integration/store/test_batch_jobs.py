"""On PostgreSQL a batch of submits (``submit_jobs``) writes the jobs it admits in one insert at
its end (migration 0024): one row per admitted job, as its submit described it, none for a
refused submit or a replay; admission and the daily spend cap decide as when each job was
inserted as its submit went."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from tests.conftest import _psycopg_dsn
from tests.integration.store.conftest import count_inserts, inserts_counted, submit_item


def submit_jobs(conn: psycopg.Connection[Any], submits: list[Any]) -> list[tuple[Any, ...]]:
    query = "SELECT outcome, job_id, counted, cap FROM submit_jobs(%s::jsonb) ORDER BY item"
    return [tuple(row) for row in conn.execute(query, (json.dumps(submits),))]


def jobs(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    query = (
        "SELECT id, account_id, status, credit_cost, created_at, deadline_at, input"
        " FROM jobs ORDER BY created_at"
    )
    return [tuple(row) for row in conn.execute(query)]


async def test_a_batch_writes_its_admitted_jobs_in_one_insert(
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
    batch[1]["input"] = {"prompt": "kept as sent"}
    with psycopg.connect(_psycopg_dsn(pg_database_url)) as conn:
        count_inserts(conn, "jobs")
        done = submit_jobs(conn, batch)

        assert [row[0] for row in done] == [
            "accepted", "accepted", "replayed", "accepted", "credits", "accepted",
        ]  # fmt: skip
        assert done[2][1] == done[0][1]
        admitted = [batch[n] for n in (0, 1, 3, 5)]
        assert jobs(conn) == [
            (s["id"], account, "QUEUED", s["credit_cost"], s["created_at"], s["deadline_at"],
             s["input"])
            for s in admitted
        ]  # fmt: skip
        # One statement for the four; the refused submit had none.
        inserts = inserts_counted(conn, "jobs")
        assert inserts == ("1",)
        conn.rollback()


async def test_the_daily_spend_cap_counts_the_jobs_admitted_before_in_the_batch(
    pg_database_url: str, account: str
) -> None:
    with psycopg.connect(_psycopg_dsn(pg_database_url), autocommit=True) as conn:
        conn.execute("UPDATE accounts SET max_daily_spend = 7 WHERE id = %s", (account,))
        assert [row[0] for row in submit_jobs(conn, [submit_item(account, cost=2)])] == ["accepted"]

        done = submit_jobs(
            conn,
            [
                submit_item(account, cost=2, at=1_001),
                submit_item(account, cost=2, at=1_002),  # 6 of 7 spent with it
                submit_item(account, cost=2, at=1_003),  # would make 8
                submit_item(account, cost=1, at=1_004),  # makes 7
            ],
        )

        assert [(row[0], row[2], row[3]) for row in done] == [
            ("accepted", None, None),
            ("accepted", None, None),
            ("daily_cap", 6, 7),
            ("accepted", None, None),
        ]
        assert [row[3] for row in jobs(conn)] == [2, 2, 2, 1]
