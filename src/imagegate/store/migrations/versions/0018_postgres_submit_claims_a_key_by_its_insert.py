"""PostgreSQL: a batch's submit claims its Idempotency-Key with one insert

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07

``submit_jobs`` (0015) claimed a key in three statements: it looked the key up, dropped an
expired record under it and inserted the new one. Keys are almost always new, so the look-up
and the drop found nothing, each an index scan and a statement through the executor: with a
key, a batch of 32 submits of one account took 3.2–3.7 ms of backend CPU, 2.3–2.5 without
(2026-12-07 04:13 UTC). The key is now claimed by its insert, ``ON CONFLICT DO NOTHING``;
only when the insert finds the key taken is it looked up, and then the outcomes are those of
0015: a live record with this request is a replay, with another a conflict, and an expired one
(or one removed meanwhile) is dropped and the key inserted afresh.

A record another transaction has inserted and not yet committed makes the insert wait for it,
then find the key taken (committed) or free (rolled back). The look-up after it runs on a new
snapshot, so the submit is answered in its batch as a replay or a conflict, where 0015's
insert failed on the key and the submit ran again alone (``submit_job``).
"""

from __future__ import annotations

from alembic import op

from imagegate.store.migrations import changed, earlier

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

LOOKED_UP_FIRST = """            IF v_key IS NOT NULL THEN
                SELECT k.fingerprint, k.job_id INTO v_fingerprint, job_id
                FROM idempotency_keys AS k
                WHERE k.account_id = v_account_id AND k.key = v_key AND k.expires_at > v_now;
                IF FOUND THEN
                    IF v_fingerprint <> s->>'fingerprint' THEN
                        outcome := 'conflict';
                    ELSE
                        outcome := 'replayed';
                        SELECT j.status INTO status FROM jobs AS j WHERE j.id = job_id;
                        status := coalesce(status, 'QUEUED');
                    END IF;
                ELSE
                    job_id := v_job_id;
                    DELETE FROM idempotency_keys AS k
                    WHERE k.account_id = v_account_id AND k.key = v_key AND k.expires_at <= v_now;
                    INSERT INTO idempotency_keys
                        (account_id, key, fingerprint, job_id, created_at, expires_at)
                    VALUES (v_account_id, v_key, s->>'fingerprint', v_job_id, v_now,
                            (s->>'key_expires_at')::BIGINT);
                END IF;
            END IF;
"""
CLAIMED_FIRST = """            IF v_key IS NOT NULL THEN
                INSERT INTO idempotency_keys
                    (account_id, key, fingerprint, job_id, created_at, expires_at)
                VALUES (v_account_id, v_key, s->>'fingerprint', v_job_id, v_now,
                        (s->>'key_expires_at')::BIGINT)
                ON CONFLICT (account_id, key) DO NOTHING;
                IF NOT FOUND THEN  -- taken: looked up on a new snapshot, committed
                    SELECT k.fingerprint, k.job_id INTO v_fingerprint, job_id
                    FROM idempotency_keys AS k
                    WHERE k.account_id = v_account_id AND k.key = v_key AND k.expires_at > v_now;
                    IF NOT FOUND THEN  -- expired, or removed since the insert
                        job_id := v_job_id;
                        DELETE FROM idempotency_keys AS k
                        WHERE k.account_id = v_account_id AND k.key = v_key
                            AND k.expires_at <= v_now;
                        INSERT INTO idempotency_keys
                            (account_id, key, fingerprint, job_id, created_at, expires_at)
                        VALUES (v_account_id, v_key, s->>'fingerprint', v_job_id, v_now,
                                (s->>'key_expires_at')::BIGINT);
                    ELSIF v_fingerprint <> s->>'fingerprint' THEN
                        outcome := 'conflict';
                    ELSE
                        outcome := 'replayed';
                        SELECT j.status INTO status FROM jobs AS j WHERE j.id = job_id;
                        status := coalesce(status, 'QUEUED');
                    END IF;
                END IF;
            END IF;
"""


def _submit_jobs_of_0015() -> str:
    return str(earlier("0015_postgres_submit_counts_once_per_account.py").SUBMIT_JOBS)


def submit_jobs() -> str:
    """This migration's ``submit_jobs``: 0015's with the key claimed by its insert."""
    return changed(_submit_jobs_of_0015(), [(LOOKED_UP_FIRST, CLAIMED_FIRST)])


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(submit_jobs())


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_submit_jobs_of_0015())
