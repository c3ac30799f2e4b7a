"""Job rows as the API sees them: insert, read, list (keyset), events and idempotency records.

Worker-side writes (claims, fenced step updates) live in ``imagegate.queue.claims``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import bindparam, delete, insert, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.store.outputs import OutputRecord
from imagegate.store.prepared import prepared
from imagegate.store.tables import idempotency_keys, job_events, jobs
from imagegate.types import JobStatus, JobStep, Millis, WebhookStatus

__all__ = [
    "IdempotencyRecord",
    "JobRow",
    "NewJob",
    "PostgresSubmit",
    "Submitted",
    "add_event",
    "claim_idempotency",
    "distinct_models",
    "find_idempotency",
    "get_job",
    "insert_idempotency",
    "insert_job",
    "job_from_row",
    "list_events",
    "list_jobs",
    "mark_cancelled",
    "new_job_values",
    "purge_idempotency",
    "set_webhook_status",
    "submit_many_postgres",
    "submit_postgres",
]


@dataclass(frozen=True)
class JobRow:
    id: str
    account_id: str
    api_key_id: str | None
    model: str
    status: str
    step: str
    progress: int
    prompt: str
    input: dict[str, Any]
    params: dict[str, Any]
    action: dict[str, Any] | None
    parent_job_id: str | None
    outputs_expected: int
    sandbox: bool
    credit_cost: int
    provider: str | None
    upstream_model: str | None
    route_index: int
    provider_task_id: str | None
    provider_state: dict[str, Any] | None
    outputs: list[OutputRecord] | None
    error: str | None
    error_code: str | None
    webhook_url: str | None
    webhook_events: list[str] | None
    webhook_status: str | None
    run_at: Millis
    attempts: int
    lease_owner: str | None
    lease_token: str | None
    lease_expires_at: Millis | None
    deadline_at: Millis
    created_at: Millis
    updated_at: Millis
    started_at: Millis | None
    completed_at: Millis | None
    expires_at: Millis | None
    expired: bool
    retention_days: int | None
    call_started_at: Millis | None = None
    interrupted_calls: int = 0

    @property
    def job_status(self) -> JobStatus:
        return JobStatus(self.status)

    @property
    def job_step(self) -> JobStep:
        return JobStep(self.step)


_FIELDS = tuple(field.name for field in dataclasses.fields(JobRow))
"""``JobRow``'s fields: the ``jobs`` table's columns, in the table's order."""
_SANDBOX, _EXPIRED = _FIELDS.index("sandbox"), _FIELDS.index("expired")


def job_from_row(row: Any) -> JobRow:
    """The job of a whole ``jobs`` row, its columns in the table's order, as every statement
    reads one (``select(jobs)``, ``returning(*jobs.c)``, a function's rows ``.columns(*jobs.c)``).

    Read by position: by name, through the row's mapping, it cost about twice as much, and a
    PostgreSQL worker reads a dozen rows a claim and as many a batch of completions."""
    values = list(row)
    values[_SANDBOX] = bool(values[_SANDBOX])
    values[_EXPIRED] = bool(values[_EXPIRED])
    return JobRow(*values)


@dataclass(frozen=True, kw_only=True)
class NewJob:
    """A job as submitted: what a generation or an action decides; ``insert_job`` adds the rest.

    Every job starts QUEUED at step ``submit``, with progress 0, due at ``created_at``.
    ``input`` is the request as the job shows it back; ``action`` (Midjourney follow-ups) carries
    the parent's provider, upstream model and task id, which the router and the adapter read.
    """

    id: str
    account_id: str
    api_key_id: str | None
    model: str
    prompt: str
    input: dict[str, Any]
    params: dict[str, Any]
    outputs_expected: int
    sandbox: bool
    credit_cost: int
    webhook_url: str | None
    webhook_events: list[str] | None
    retention_days: int | None
    created_at: Millis
    deadline_at: Millis
    action: dict[str, Any] | None = None
    parent_job_id: str | None = None


# The statements of the submit and read paths are built once: each call only binds values. On
# SQLite they run below SQLAlchemy (``prepared``).
_INSERT_JOB = prepared(insert(jobs))
_GET_JOB = prepared(select(jobs).where(jobs.c.id == bindparam("job_id")))
_GET_OWN_JOB = prepared(_GET_JOB.where(jobs.c.account_id == bindparam("account_id")))


_NEW_JOB_FIELDS = tuple(field.name for field in dataclasses.fields(NewJob))


def new_job_values(job: NewJob) -> dict[str, Any]:
    """The columns ``insert_job`` writes for ``job``: QUEUED, at step ``submit``, due now."""
    values = {name: getattr(job, name) for name in _NEW_JOB_FIELDS}
    values["status"] = JobStatus.QUEUED.value
    values["step"] = JobStep.SUBMIT.value
    values["progress"] = 0
    values["run_at"] = values["updated_at"] = job.created_at
    return values


async def insert_job(conn: AsyncConnection, job: NewJob) -> None:
    """Insert ``job`` as a QUEUED job, due now."""
    await conn.execute(_INSERT_JOB, new_job_values(job))


async def get_job(
    conn: AsyncConnection, job_id: str, account_id: str | None = None
) -> JobRow | None:
    """One job; with ``account_id``, only if that account owns it (another's job is "not found")."""
    if account_id is None:
        row = (await conn.execute(_GET_JOB, {"job_id": job_id})).first()
    else:
        query = {"job_id": job_id, "account_id": account_id}
        row = (await conn.execute(_GET_OWN_JOB, query)).first()
    return job_from_row(row) if row else None


_GET_JOBS = select(jobs).where(jobs.c.id.in_(bindparam("job_ids", expanding=True)))


async def get_own_jobs(conn: AsyncConnection, wanted: list[tuple[str, str]]) -> list[JobRow | None]:
    """For each ``(job_id, account_id)`` of ``wanted``, that job if that account owns it (as
    ``get_job``), in one statement (``Database.read_each`` gathers the reads of a batch).

    One job (every read on SQLite, which reads each alone) is read by ``get_job``'s statement,
    built once (``prepared``): an expanding ``IN`` is compiled and run through SQLAlchemy on
    every call, which cost a SQLite read more than the rest of its trip."""
    if len(wanted) == 1:
        ((job_id, account_id),) = wanted
        return [await get_job(conn, job_id, account_id)]
    rows = await conn.execute(_GET_JOBS, {"job_ids": sorted({job_id for job_id, _ in wanted})})
    found = {row.id: row for row in rows}
    return [
        job_from_row(row) if (row := found.get(job_id)) and row.account_id == account_id else None
        for job_id, account_id in wanted
    ]


async def list_jobs(
    conn: AsyncConnection,
    account_id: str,
    *,
    limit: int,
    after: tuple[Millis, str] | None = None,
    status: str | None = None,
    model: str | None = None,
    job_id: str | None = None,
) -> list[JobRow]:
    """Newest first, keyed on ``(created_at, id)``; ``after`` is the last row of the previous page.

    Returns up to ``limit + 1`` rows so the caller can tell whether another page exists.
    """
    query = select(jobs).where(jobs.c.account_id == account_id)
    if status is not None:
        query = query.where(jobs.c.status == status)
    if model is not None:
        query = query.where(jobs.c.model == model)
    if job_id is not None:
        query = query.where(jobs.c.id == job_id)
    if after is not None:
        created_at, last_id = after
        query = query.where(
            (jobs.c.created_at < created_at)
            | ((jobs.c.created_at == created_at) & (jobs.c.id < last_id))
        )
    query = query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit + 1)
    return [job_from_row(row) for row in await conn.execute(query)]


async def distinct_models(conn: AsyncConnection, account_id: str) -> list[str]:
    rows = await conn.execute(
        select(jobs.c.model)
        .where(jobs.c.account_id == account_id)
        .distinct()
        .order_by(jobs.c.model)
    )
    return [row[0] for row in rows]


_INSERT_EVENT = prepared(insert(job_events))


async def add_event(
    conn: AsyncConnection,
    job_id: str,
    kind: str,
    now: Millis,
    data: Mapping[str, Any] | None = None,
) -> None:
    await conn.execute(
        _INSERT_EVENT,
        {"job_id": job_id, "at": now, "kind": kind, "data": dict(data) if data else None},
    )


async def list_events(conn: AsyncConnection, job_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(job_events).where(job_events.c.job_id == job_id).order_by(job_events.c.id)
    )
    return [dict(row._mapping) for row in rows]


@dataclass(frozen=True)
class IdempotencyRecord:
    fingerprint: str
    job_id: str


_FIND_IDEMPOTENCY = prepared(
    select(idempotency_keys.c.fingerprint, idempotency_keys.c.job_id).where(
        idempotency_keys.c.account_id == bindparam("account_id"),
        idempotency_keys.c.key == bindparam("key"),
        idempotency_keys.c.expires_at > bindparam("now"),
    )
)
_DROP_EXPIRED_IDEMPOTENCY = prepared(
    delete(idempotency_keys).where(
        idempotency_keys.c.account_id == bindparam("account_id"),
        idempotency_keys.c.key == bindparam("key"),
        idempotency_keys.c.expires_at <= bindparam("now"),
    )
)
_INSERT_IDEMPOTENCY = prepared(insert(idempotency_keys))


async def find_idempotency(
    conn: AsyncConnection, account_id: str, key: str, now: Millis
) -> IdempotencyRecord | None:
    query = {"account_id": account_id, "key": key, "now": now}
    row = (await conn.execute(_FIND_IDEMPOTENCY, query)).first()
    return IdempotencyRecord(row.fingerprint, row.job_id) if row else None


async def insert_idempotency(
    conn: AsyncConnection,
    *,
    account_id: str,
    key: str,
    fingerprint: str,
    job_id: str,
    now: Millis,
    expires_at: Millis,
) -> None:
    """Record a key. An expired record under the same key is replaced; a live one makes the
    insert fail with ``IntegrityError`` (a concurrent duplicate: the caller retries and replays)."""
    await conn.execute(
        _DROP_EXPIRED_IDEMPOTENCY, {"account_id": account_id, "key": key, "now": now}
    )
    await conn.execute(
        _INSERT_IDEMPOTENCY,
        {
            "account_id": account_id,
            "key": key,
            "fingerprint": fingerprint,
            "job_id": job_id,
            "created_at": now,
            "expires_at": expires_at,
        },
    )


_CLAIM_IDEMPOTENCY = prepared(
    text(
        "INSERT INTO idempotency_keys"
        " (account_id, key, fingerprint, job_id, created_at, expires_at)"
        " VALUES (:account_id, :key, :fingerprint, :job_id, :now, :expires_at)"
        " ON CONFLICT (account_id, key) DO UPDATE SET fingerprint = excluded.fingerprint,"
        " job_id = excluded.job_id, created_at = excluded.created_at,"
        " expires_at = excluded.expires_at"
        " WHERE idempotency_keys.expires_at <= excluded.created_at"
    )
)


async def claim_idempotency(
    conn: AsyncConnection,
    *,
    account_id: str,
    key: str,
    fingerprint: str,
    job_id: str,
    now: Millis,
    expires_at: Millis,
) -> IdempotencyRecord | None:
    """Record ``key`` for ``job_id``, or find the live record that holds it.

    None: the key is recorded (it was new, or its record had expired and is replaced). Else the
    live record, left as it was. What ``find_idempotency`` and then ``insert_idempotency`` do,
    in one statement when the key is free (the usual case) instead of three."""
    claim = {
        "account_id": account_id,
        "key": key,
        "fingerprint": fingerprint,
        "job_id": job_id,
        "now": now,
        "expires_at": expires_at,
    }
    if (await conn.execute(_CLAIM_IDEMPOTENCY, claim)).rowcount == 1:
        return None
    existing = await find_idempotency(conn, account_id, key, now)
    if existing is None:  # expired in between (PostgreSQL): claim it as before
        await insert_idempotency(
            conn,
            account_id=account_id,
            key=key,
            fingerprint=fingerprint,
            job_id=job_id,
            now=now,
            expires_at=expires_at,
        )
    return existing


async def purge_idempotency(conn: AsyncConnection, now: Millis) -> int:
    result = await conn.execute(
        delete(idempotency_keys).where(idempotency_keys.c.expires_at <= now)
    )
    return result.rowcount


async def set_webhook_status(conn: AsyncConnection, job_id: str, status: WebhookStatus) -> None:
    """The job's ``webhookStatus``: where its ``completed``/``failed`` delivery stands."""
    await conn.execute(update(jobs).where(jobs.c.id == job_id).values(webhook_status=status.value))


async def mark_cancelled(conn: AsyncConnection, job: JobRow, step: JobStep, now: Millis) -> bool:
    """CANCELLED, unless the job moved on meanwhile. Clearing the lease token fences out any
    worker still running a step for it. False when the job's status had changed."""
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.id == job.id, jobs.c.status == job.status)
        .values(
            status=JobStatus.CANCELLED.value,
            step=step.value,
            run_at=now,
            credit_cost=0,
            completed_at=now,
            updated_at=now,
            lease_owner=None,
            lease_token=None,
            lease_expires_at=None,
        )
    )
    return result.rowcount == 1


@dataclass(frozen=True, kw_only=True)
class PostgresSubmit:
    """A generation's submit as ``submit_job`` (migration 0010) takes it: the job, its
    Idempotency-Key with the request's fingerprint, and what admission compares with."""

    job: NewJob
    key: str | None
    fingerprint: str
    key_expires_at: Millis
    max_queued: int
    day_start: Millis

    def arguments(self) -> dict[str, Any]:
        """``submit_job``'s arguments by name (``job`` has no ``action``)."""
        values = {field.name: getattr(self.job, field.name) for field in dataclasses.fields(NewJob)}
        del values["action"], values["parent_job_id"]
        return {
            **values,
            "key": self.key,
            "fingerprint": self.fingerprint,
            "key_expires_at": self.key_expires_at,
            "max_queued": self.max_queued,
            "day_start": self.day_start,
        }


@dataclass(frozen=True)
class Submitted:
    """What ``submit_job`` did: ``outcome`` is ``accepted``, ``replayed`` (``job_id`` and
    ``status`` are the original job's), ``conflict`` (the key was used with another request),
    or the refusal: ``queued_cap`` (``counted``: queued jobs), ``concurrent_cap`` (``counted``
    of ``cap`` active jobs), ``daily_cap`` (``counted`` of ``cap`` credits spent today) or
    ``credits`` (``counted``: the balance). From ``submit_postgres`` a refusal has written rows:
    the caller raises, and the transaction rolls back. From ``submit_many_postgres`` its rows
    are already undone, and ``retry`` says the submit failed and wrote nothing: its caller runs
    it again alone (``submit_postgres``)."""

    outcome: str
    job_id: str
    status: str
    counted: int | None
    cap: int | None


_SUBMIT = text(
    "SELECT * FROM submit_job(:id, :account_id, :api_key_id, :model, :prompt, :input, :params,"
    " :outputs_expected, :sandbox, :credit_cost, :webhook_url, :webhook_events,"
    " :retention_days, :created_at, :deadline_at, :key, :fingerprint, :key_expires_at,"
    " :max_queued, :day_start)"
).bindparams(
    bindparam("input", type_=JSONB),
    bindparam("params", type_=JSONB),
    bindparam("webhook_events", type_=JSONB),
)
_SUBMIT_MANY = text("SELECT * FROM submit_jobs(:submits)").bindparams(
    bindparam("submits", type_=JSONB)
)


async def submit_postgres(conn: AsyncConnection, submit: PostgresSubmit) -> Submitted:
    """A generation's whole submit in one statement (``submit_job``, migration 0010): the
    Idempotency-Key, the job and its ``queued`` event, the NOTIFY, the admission under the
    account's lock and the credit reservation, as ``claim_key``, ``insert_job``, ``add_event``
    and ``admit`` do them one statement each. PostgreSQL only."""
    row = (await conn.execute(_SUBMIT, submit.arguments())).one()
    return Submitted(row.outcome, row.job_id, row.status, row.counted, row.cap)


async def submit_many_postgres(
    conn: AsyncConnection, submits: list[PostgresSubmit]
) -> list[Submitted]:
    """Many callers' submits in one statement (``submit_jobs``, migration 0011), each as
    ``submit_postgres`` runs it, in order within an account; what each did, in the order of
    ``submits``. A refused or failed submit's writes are undone and the others' kept, so the
    transaction commits whatever the outcomes. The admitted jobs' rows are inserted together at
    the end (0024): a failure there fails the statement, and so the whole batch. PostgreSQL only
    (``Database.write_each``)."""
    rows = await conn.execute(_SUBMIT_MANY, {"submits": [s.arguments() for s in submits]})
    done: list[Submitted | None] = [None] * len(submits)
    for row in rows:
        done[row.item] = Submitted(row.outcome, row.job_id, row.status, row.counted, row.cap)
    assert all(submitted is not None for submitted in done), "submit_jobs skipped a submit"
    return cast(list[Submitted], done)
