"""PostgreSQL: many callers' submits in one statement, ``submit_jobs``

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

One submit per transaction made one account's submits serial on its row lock, each holding it
from ``submit_job`` (0010) across the client's next round trip and the commit's WAL flush.
``submit_jobs`` runs a batch of submits (a JSON array, one object per ``submit_job`` call) in
one statement, so the batch pays for one lock, one round trip and one commit.

Each submit runs in a block of its own (a subtransaction): a refused one (``conflict`` or a
cap, whose writes ``submit_job`` leaves for the caller's rollback) raises to undo its own
writes only and keeps its outcome. Any other error in it (a unique violation on the key from
another process's race, a deadlock, a value the table refuses) also undoes only its writes and
answers ``retry``: its caller runs it again alone, as before this function, and gets that
path's answer or error. Row locks of a rolled-back block are released with it, but an account
stays locked from the first accepted submit of it to the commit, so the counts each later
submit reads under the lock stay exact.

The batch runs in the order of account ids (stable), so two batches lock their accounts in one
order and cannot deadlock on them; one account's submits keep the order they were queued in, so
two with one Idempotency-Key behave as two in a row (the second replays or conflicts).
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION submit_jobs(
            p_submits JSONB,
            OUT item INTEGER,
            OUT outcome TEXT,
            OUT job_id VARCHAR,
            OUT status VARCHAR,
            OUT counted BIGINT,
            OUT cap BIGINT
        ) RETURNS SETOF record LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            v_submit JSONB;
            v_item BIGINT;
        BEGIN
            FOR v_submit, v_item IN
                SELECT s.value, s.ordinality
                FROM jsonb_array_elements(p_submits) WITH ORDINALITY AS s
                ORDER BY s.value->>'account_id', s.ordinality
            LOOP
                BEGIN
                    SELECT s.outcome, s.job_id, s.status, s.counted, s.cap
                    INTO outcome, job_id, status, counted, cap
                    FROM submit_job(
                        v_submit->>'id',
                        v_submit->>'account_id',
                        v_submit->>'api_key_id',
                        v_submit->>'model',
                        v_submit->>'prompt',
                        v_submit->'input',
                        v_submit->'params',
                        (v_submit->>'outputs_expected')::INTEGER,
                        (v_submit->>'sandbox')::BOOLEAN,
                        (v_submit->>'credit_cost')::BIGINT,
                        v_submit->>'webhook_url',
                        v_submit->'webhook_events',
                        (v_submit->>'retention_days')::INTEGER,
                        (v_submit->>'created_at')::BIGINT,
                        (v_submit->>'deadline_at')::BIGINT,
                        v_submit->>'key',
                        v_submit->>'fingerprint',
                        (v_submit->>'key_expires_at')::BIGINT,
                        (v_submit->>'max_queued')::INTEGER,
                        (v_submit->>'day_start')::BIGINT
                    ) AS s;
                    IF outcome NOT IN ('accepted', 'replayed') THEN
                        -- Undo this submit's writes; the outcome stays set.
                        RAISE EXCEPTION USING ERRCODE = 'IGREF';
                    END IF;
                EXCEPTION
                    WHEN SQLSTATE 'IGREF' THEN
                        NULL;
                    WHEN OTHERS THEN
                        outcome := 'retry';
                        job_id := NULL;
                        status := NULL;
                        counted := NULL;
                        cap := NULL;
                END;
                item := v_item - 1;
                RETURN NEXT;
            END LOOP;
        END
        $$
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION submit_jobs(JSONB)")
