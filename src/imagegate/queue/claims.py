"""Every SQL statement the worker runs against the jobs table, with the invariant each keeps.

A job is *due* when its ``step`` is not ``done``, ``run_at <= now`` and nobody holds a live lease.
Claiming stamps it with a lease: an owner, a fresh random ``lease_token`` and an expiry. From then
on **every write the worker makes is fenced**: ``WHERE id = :id AND lease_token = :token``. If the
lease expired and another worker claimed the job (new token), or the job was cancelled (token
cleared), the stale worker's write matches no row, ``rowcount`` is 0, and it drops its result
instead of overwriting newer state. Crash recovery needs no reaper: an expired lease simply makes
the row due again.

On PostgreSQL the claim's inner SELECT takes ``FOR UPDATE SKIP LOCKED``, so concurrent claimers
skip each other's rows instead of waiting; there a completion is one statement (``complete_job``,
migration 0013) instead of one per row it writes. SQLite has no row locks: the statement runs
inside a ``BEGIN IMMEDIATE`` transaction (``store.db``), which serialises writers, so the
subquery and the UPDATE see the same rows.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Update, bindparam, case, func, insert, literal, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import BigInteger, String

from imagegate.store.jobs import JobRow, NewJob, job_from_row, new_job_values
from imagegate.store.outputs import OutputRecord
from imagegate.store.prepared import prepared
from imagegate.store.tables import jobs
from imagegate.types import Credits, JobStatus, JobStep, Millis, Route

__all__ = [
    "CallMark",
    "Completion",
    "claim",
    "complete_job",
    "complete_jobs",
    "fenced_update",
    "insert_claimed_job",
    "mark_calls",
    "next_due",
    "queue_depth",
    "release",
    "release_job",
    "release_owner",
    "renew",
    "renew_owner",
]

_ACTIVE_STEPS = (
    JobStep.SUBMIT.value,
    JobStep.POLL.value,
    JobStep.FETCH.value,
    JobStep.CANCEL.value,
)


async def claim(
    conn: AsyncConnection,
    *,
    owner: str,
    token: str,
    now: Millis,
    lease_ms: int,
    limit: int,
) -> list[JobRow]:
    """Lease up to ``limit`` due jobs, oldest ``run_at`` first.

    Invariant: a job is held by at most one live lease; the token identifies this claim.
    A QUEUED job becomes PROCESSING when first claimed.
    """
    result = await conn.execute(
        _CLAIM,
        {
            "claim_owner": owner,
            "claim_token": token,
            "claim_now": now,
            "claim_expires_at": now + lease_ms,
            "claim_limit": limit,
        },
    )
    return [job_from_row(row) for row in result]


def _lease(owner: Any, token: Any, now: Any, *, expires_at: Any) -> dict[str, Any]:
    """The lease a claim writes, whether it updates a queued job or inserts one claimed: values,
    or the bound parameters of ``_CLAIM``, the statement built once."""
    return {
        "lease_owner": owner,
        "lease_token": token,
        "lease_expires_at": expires_at,
        "updated_at": now,
    }


_DUE = (
    select(jobs.c.id)
    .where(
        # One bound value per step: an IN of a plain list is expanded on every execution.
        jobs.c.step.in_([literal(step) for step in _ACTIVE_STEPS]),
        jobs.c.run_at <= bindparam("claim_now"),
        jobs.c.lease_expires_at.is_(None) | (jobs.c.lease_expires_at < bindparam("claim_now")),
    )
    .order_by(jobs.c.run_at)
    .limit(bindparam("claim_limit"))
    .with_for_update(skip_locked=True)
)
_CLAIM = prepared(
    update(jobs)
    .where(jobs.c.id.in_(_DUE.scalar_subquery()))
    .values(
        _lease(
            bindparam("claim_owner"),
            bindparam("claim_token"),
            bindparam("claim_now"),
            expires_at=bindparam("claim_expires_at"),
        )
        | {
            "status": case(
                (jobs.c.status == JobStatus.QUEUED.value, JobStatus.PROCESSING.value),
                else_=jobs.c.status,
            ),
            "started_at": func.coalesce(jobs.c.started_at, bindparam("claim_now")),
        }
    )
    .returning(*jobs.c)
)
"""``claim``'s statement, built once: built on each call, the statement and its cache key took
about half of a claim's CPU in a PostgreSQL worker's body thread (``bench/notes.md``, e2e); on
SQLite it runs below SQLAlchemy (``prepared``). Its lease is ``_lease``'s, in bound values."""


_INSERT_CLAIMED_JOB = prepared(insert(jobs).returning(*jobs.c))
"""``insert_claimed_job``'s statement, built once (it runs in every direct ``/v1`` submit; on
SQLite below SQLAlchemy, ``prepared``)."""


async def insert_claimed_job(
    conn: AsyncConnection,
    job: NewJob,
    *,
    owner: str,
    token: str,
    now: Millis,
    lease_ms: int,
    calling: bool = False,
) -> JobRow:
    """Insert ``job`` already leased, as ``claim`` would lease it once inserted (the API process
    that runs a ``/v1`` call in the request's own task; see ``queue.worker``): PROCESSING,
    started now; with ``calling``, also its first paid call recorded as in flight
    (``call_started_at``), as ``JobTransitions.calling`` would just before the call.

    One write of the row: inserted QUEUED and then claimed in the same transaction, the row,
    its indexes and the account's job counts were each written twice, and no one outside the
    transaction ever saw the QUEUED row (a fifth of the submit's SQLite time, ``bench/notes.md``,
    litellm).

    Invariant: the same as ``claim``'s, and the lease is the same: renewed by ``owner``'s
    heartbeat, fencing every write, and due again for any worker once it expires. A ``calling``
    mark committed before the call only errs on the safe side: if the process dies before the
    call is made, the worker that takes the job over counts it as an interrupted call
    (``queue.runner``); every release of the lease clears it.
    """
    values = new_job_values(job)
    values.update(
        _lease(owner, token, now, expires_at=now + lease_ms),
        status=JobStatus.PROCESSING.value,
        started_at=now,
        call_started_at=now if calling else None,
    )
    return job_from_row((await conn.execute(_INSERT_CLAIMED_JOB, values)).first())


async def renew(conn: AsyncConnection, job_id: str, token: str, now: Millis, lease_ms: int) -> bool:
    """Extend a held lease (heartbeat). False means the lease was lost: stop working on the job."""
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.lease_token == token)
        .values(lease_expires_at=now + lease_ms)
    )
    return result.rowcount == 1


async def renew_owner(
    conn: AsyncConnection, owner: str, now: Millis, lease_ms: int
) -> dict[str, str]:
    """Extend every lease ``owner`` holds (the worker's heartbeat, one statement however many
    jobs are in flight); job id → lease token of each lease still held. A job missing from the
    answer, or held under another token, was lost: stop working on it.

    Invariant: on PostgreSQL the rows are locked in id order, as ``mark_calls`` locks them, so
    the two never wait on each other in a cycle."""
    held = (
        select(jobs.c.id)
        .where(jobs.c.lease_owner == owner, jobs.c.lease_token.is_not(None))
        .order_by(jobs.c.id)
        .with_for_update()
    )
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.id.in_(held.scalar_subquery()))
        .values(lease_expires_at=now + lease_ms)
        .returning(jobs.c.id, jobs.c.lease_token)
    )
    return {row.id: row.lease_token for row in result}


@dataclass(frozen=True, slots=True)
class CallMark:
    """A paid call about to be made for the job ``job_id`` leased under ``token``, at ``now``."""

    job_id: str
    token: str
    now: Millis


_MARK_CALLS = text(
    """
    WITH marks AS MATERIALIZED (
        SELECT * FROM unnest(:ids, :tokens, :nows) AS mark(id, token, now)
    ), held AS MATERIALIZED (
        SELECT jobs.id FROM jobs JOIN marks ON jobs.id = marks.id AND jobs.lease_token = marks.token
        ORDER BY jobs.id FOR UPDATE OF jobs
    )
    UPDATE jobs SET call_started_at = marks.now, updated_at = marks.now
    FROM marks
    WHERE jobs.id = marks.id AND jobs.lease_token = marks.token AND jobs.id IN (SELECT id FROM held)
    RETURNING jobs.id
    """
).bindparams(
    bindparam("ids", type_=ARRAY(String)),
    bindparam("tokens", type_=ARRAY(String)),
    bindparam("nows", type_=ARRAY(BigInteger)),
)


async def mark_calls(conn: AsyncConnection, marks: list[CallMark]) -> list[bool]:
    """Record each of ``marks``' paid calls as in flight (``call_started_at``), in one
    statement (PostgreSQL only; ``Database.write_each`` gathers the marks of concurrent jobs);
    for each, False when its token no longer holds the lease (nothing written for it).

    Invariant: the same fence as ``fenced_update`` for each job; the rows are locked in id
    order, as ``renew_owner`` locks them."""
    result = await conn.execute(
        _MARK_CALLS,
        {
            "ids": [mark.job_id for mark in marks],
            "tokens": [mark.token for mark in marks],
            "nows": [mark.now for mark in marks],
        },
    )
    marked = {row.id for row in result}
    return [mark.job_id in marked for mark in marks]


async def fenced_update(
    conn: AsyncConnection, job_id: str, token: str, values: Mapping[str, Any]
) -> bool:
    """Write ``values`` only while ``token`` still holds the lease; False when it does not."""
    result = await conn.execute(_fenced(tuple(values), False), _bound(job_id, token, values))
    return result.rowcount == 1


@functools.cache
def _fenced(columns: tuple[str, ...], returning: bool) -> Update:
    """The fenced UPDATE of ``columns`` (answering the row when ``returning``), built once per
    set of columns: each write only binds its values (building it took most of a completion's
    time in its transaction), on SQLite below SQLAlchemy (``prepared``). The sets of columns
    are the transitions' own, a few dozen at most."""
    statement = (
        update(jobs)
        .where(jobs.c.id == bindparam("fenced_id"), jobs.c.lease_token == bindparam("fenced_token"))
        .values({name: bindparam(f"set_{name}") for name in columns})
    )
    return prepared(statement.returning(*jobs.c) if returning else statement)


def _bound(job_id: str, token: str, values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "fenced_id": job_id,
        "fenced_token": token,
        **{f"set_{name}": value for name, value in values.items()},
    }


async def release(
    conn: AsyncConnection, job_id: str, token: str, values: Mapping[str, Any] | None = None
) -> bool:
    """Write ``values`` and give the lease up, so the job is due again at its ``run_at``.

    Releasing also clears ``call_started_at``: a release records the outcome of any paid call
    the step made, so the call is no longer in flight. ``release_owner`` (shutdown) deliberately
    keeps it, since a call cut off there never had its outcome recorded.
    """
    return await fenced_update(conn, job_id, token, _released(values))


async def release_job(
    conn: AsyncConnection, job_id: str, token: str, values: Mapping[str, Any]
) -> JobRow | None:
    """``release`` answering the job as it now stands; None when ``token`` lost the lease."""
    released = _released(values)
    result = await conn.execute(_fenced(tuple(released), True), _bound(job_id, token, released))
    row = result.first()
    return job_from_row(row) if row is not None else None


_COMPLETE_JOB = (
    text(
        f"SELECT {', '.join(jobs.c.keys())} FROM complete_job(:id, :token, :now, :charged,"
        " :expires_at, :webhook_status, :provider, :upstream_model, :outputs, :refund,"
        " :refund_note, :delivery_id, :channel)"
    )
    .bindparams(bindparam("outputs", type_=JSONB(none_as_null=True)))
    .columns(*jobs.c)
)


@dataclass(frozen=True, slots=True)
class Completion:
    """One job's completion, for ``complete_job`` and (without a refund) ``complete_jobs``."""

    job_id: str
    token: str
    now: Millis
    charged: Credits
    expires_at: Millis
    webhook_status: str | None
    stored: tuple[Route, Sequence[OutputRecord]] | None
    delivery_id: str | None
    channel: str | None
    refund: Credits = 0
    refund_note: str = ""

    def argument(self) -> dict[str, Any]:
        """The batch item ``complete_jobs`` reads (a key left out is NULL)."""
        item: dict[str, Any] = {
            "id": self.job_id,
            "token": self.token,
            "at_ms": self.now,
            "charged": self.charged,
            "expires_at": self.expires_at,
            "webhook_status": self.webhook_status,
            "delivery_id": self.delivery_id,
            "channel": self.channel,
        }
        if self.stored is not None:
            route, outputs = self.stored
            item["provider"] = route.provider
            item["upstream_model"] = route.upstream_model
            item["outputs"] = [record.to_json() for record in outputs]
        return item


async def complete_job(conn: AsyncConnection, completion: Completion) -> JobRow | None:
    """A completion in one statement (``complete_job``, migration 0013; PostgreSQL only): the
    job COMPLETED and its lease released, as ``release_job`` writes it, with ``stored``'s
    route and outputs and their ``stored`` event; ``refund`` credits given back, the capture of
    ``charged`` recorded, the ``completed`` event, the webhook delivery ``delivery_id`` and the
    NOTIFY on ``channel`` (each skipped when zero or None). The job as written; None when
    ``token`` lost the lease, and then nothing was written.

    Invariant: the same fence as every write here, and the statement writes nothing else
    unless it matched."""
    route, outputs = completion.stored if completion.stored is not None else (None, None)
    result = await conn.execute(
        _COMPLETE_JOB,
        {
            "id": completion.job_id,
            "token": completion.token,
            "now": completion.now,
            "charged": completion.charged,
            "expires_at": completion.expires_at,
            "webhook_status": completion.webhook_status,
            "provider": route.provider if route else None,
            "upstream_model": route.upstream_model if route else None,
            "outputs": [record.to_json() for record in outputs] if outputs is not None else None,
            "refund": completion.refund,
            "refund_note": completion.refund_note,
            "delivery_id": completion.delivery_id,
            "channel": completion.channel,
        },
    )
    row = result.first()
    return job_from_row(row) if row is not None else None


_COMPLETE_JOBS = (
    text(f"SELECT {', '.join(jobs.c.keys())} FROM complete_jobs(:completions)")
    .bindparams(bindparam("completions", type_=JSONB))
    .columns(*jobs.c)
)


async def complete_jobs(
    conn: AsyncConnection, completions: list[Completion]
) -> list[JobRow | None]:
    """Many completions in one statement (``complete_jobs``, migrations 0019 and 0022;
    PostgreSQL only), each as ``complete_job`` writes it (none may refund), each table written
    once for the whole batch; for each, the job as written, or None when its token lost the
    lease (nothing written for that one).

    Invariant: the same fence as ``complete_job`` for each job. The job rows are locked in id
    order before the account's, so ``completions`` must be of one account and refund nothing
    (see the migration)."""
    if any(completion.refund for completion in completions):
        raise ValueError("complete_jobs writes no refund: complete_job writes those one by one")
    result = await conn.execute(
        _COMPLETE_JOBS, {"completions": [completion.argument() for completion in completions]}
    )
    finished = {row.id: job_from_row(row) for row in result}
    return [finished.get(completion.job_id) for completion in completions]


def _released(values: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        "call_started_at": None,
        **(values or {}),
        "lease_owner": None,
        "lease_token": None,
        "lease_expires_at": None,
    }


async def release_owner(conn: AsyncConnection, owner: str) -> int:
    """Graceful shutdown: give up every lease ``owner`` holds, so peers take the jobs at once."""
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.lease_owner == owner, jobs.c.lease_token.is_not(None))
        .values(lease_owner=None, lease_token=None, lease_expires_at=None)
    )
    return result.rowcount


async def next_due(conn: AsyncConnection) -> Millis | None:
    """The earliest ``run_at`` among unleased active jobs (how long a worker may sleep)."""
    value = await conn.scalar(
        select(func.min(jobs.c.run_at)).where(
            jobs.c.step.in_(_ACTIVE_STEPS), jobs.c.lease_token.is_(None)
        )
    )
    return int(value) if value is not None else None


async def queue_depth(conn: AsyncConnection, now: Millis) -> dict[str, int]:
    """Jobs per step that are due now (for metrics)."""
    rows = await conn.execute(
        select(jobs.c.step, func.count())
        .where(jobs.c.step.in_(_ACTIVE_STEPS), jobs.c.run_at <= now)
        .group_by(jobs.c.step)
    )
    return {row[0]: int(row[1]) for row in rows}
