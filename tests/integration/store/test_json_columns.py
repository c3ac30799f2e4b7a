"""A job's JSON columns read back as they were written, whichever connection reads them."""

from __future__ import annotations

from typing import Any

from imagegate.queue import claims
from imagegate.store import jobs as job_store
from imagegate.store.db import Database
from tests.factories import add_account, add_job

PARAMS: dict[str, Any] = {
    "seed": 123456789012345678901234567890,
    "below_64_bits": -9223372036854775809,
    "largest_64_bits": 18446744073709551615,
    "ratio": 0.1,
    "text": 'ünïcödé ✓ \u2028 "quoted"',
    "nested": [[{"a": [1, 2.5, {"b": None}]}], True, False, ""],
}
"""Numbers orjson would read otherwise (past 64 bits, as floats) beside plain values."""


async def test_a_jobs_params_read_back_as_written_by_a_claim_and_by_a_read(db: Database) -> None:
    account = await add_account(db)
    job_id = await add_job(db, account, params=PARAMS)

    async def claim(conn: Any) -> list[job_store.JobRow]:
        return await claims.claim(conn, owner="w", token="t", now=5_000, lease_ms=30_000, limit=1)

    (claimed,) = await db.write_alone(claim)
    async with db.read() as conn:
        read = await job_store.get_job(conn, job_id)

    assert read is not None
    for job in (claimed, read):
        assert job.params == PARAMS
        assert {key: type(value) for key, value in job.params.items()} == {
            key: type(value) for key, value in PARAMS.items()
        }
