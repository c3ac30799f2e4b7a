"""PostgreSQL: ``submit_jobs`` takes an account's lock and counts its jobs once per batch

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

``submit_jobs`` (0011) called ``submit_job`` for each submit, so each one folded the account's
count changes (0008, 0009): a ``DELETE … RETURNING`` and an ``INSERT`` on
``account_job_count_changes``, whose index then holds one more dead entry per change until
vacuum. The scan walks every dead entry (~14,000 after ~2,500 submits: 0.4 ms a fold), and in a
batch each fold also walks the ones the batch left, so the folds were over half the server's time
per submit.

Now a batch folds an account's changes once, with the lock, at the account's first submit, and
keeps the counts for its following ones: each job the batch admits adds one queued job. The
counts stay exact: the lock is held from that fold to the commit, so no other admission of the
account runs meanwhile, and a change a worker commits meanwhile (a claim, a completion) only
lowers what a fresh count would show, so a later submit of the batch is admitted as if all of
them had been at the fold. A refused or failed submit undoes its writes and, if it took the lock,
the lock: the next submit of the account locks and counts again. Otherwise each submit runs as
``submit_job`` runs it (same statements, same order, same outcomes).
"""

from __future__ import annotations

from alembic import op

from imagegate.store.migrations import earlier

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SUBMIT_JOBS = """
CREATE OR REPLACE FUNCTION submit_jobs(
    p_submits JSONB,
    OUT item INTEGER,
    OUT outcome TEXT,
    OUT job_id VARCHAR,
    OUT status VARCHAR,
    OUT counted BIGINT,
    OUT cap BIGINT
) RETURNS SETOF record LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    s JSONB;
    v_item BIGINT;
    v_account_id VARCHAR;
    v_job_id VARCHAR;
    v_key VARCHAR;
    v_cost BIGINT;
    v_now BIGINT;
    v_fingerprint VARCHAR;
    v_counted_for VARCHAR;
    v_lock RECORD;
    v_account accounts;
    v_queued INTEGER;
    v_processing INTEGER;
    v_balance BIGINT;
BEGIN
    -- v_counted_for: the account whose lock this transaction holds and whose jobs v_queued and
    -- v_processing count (this batch's admitted ones included); NULL when none.
    FOR s, v_item IN
        SELECT e.value, e.ordinality
        FROM jsonb_array_elements(p_submits) WITH ORDINALITY AS e
        ORDER BY e.value->>'account_id', e.ordinality
    LOOP
        item := v_item - 1;
        v_account_id := s->>'account_id';
        v_job_id := s->>'id';
        v_key := s->>'key';
        v_cost := (s->>'credit_cost')::BIGINT;
        v_now := (s->>'created_at')::BIGINT;
        job_id := v_job_id;
        status := 'QUEUED';
        counted := NULL;
        cap := NULL;
        outcome := NULL;
        BEGIN
            IF v_key IS NOT NULL THEN
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
            IF outcome IS NULL THEN
                INSERT INTO jobs (
                    id, account_id, api_key_id, model, status, step, progress, prompt, input,
                    params, outputs_expected, sandbox, credit_cost, webhook_url, webhook_events,
                    retention_days, run_at, created_at, updated_at, deadline_at
                ) VALUES (
                    v_job_id, v_account_id, s->>'api_key_id', s->>'model', 'QUEUED', 'submit', 0,
                    s->>'prompt', s->'input', s->'params', (s->>'outputs_expected')::INTEGER,
                    (s->>'sandbox')::BOOLEAN, v_cost, s->>'webhook_url', s->'webhook_events',
                    (s->>'retention_days')::INTEGER, v_now, v_now, v_now,
                    (s->>'deadline_at')::BIGINT
                );
                INSERT INTO job_events (job_id, at, kind, data)
                VALUES (v_job_id, v_now, 'queued', jsonb_build_object('cost', v_cost));
                NOTIFY imagegate_jobs;
                -- Admitted last, so the account is locked from its first submit of the batch.
                IF v_counted_for IS DISTINCT FROM v_account_id THEN
                    SELECT * INTO v_lock FROM lock_account_for_admission(v_account_id);
                    v_account := v_lock.account;
                    v_queued := v_lock.queued_jobs;
                    v_processing := v_lock.processing_jobs;
                    v_counted_for := CASE WHEN v_account.id IS NOT NULL THEN v_account_id END;
                ELSE
                    v_queued := v_queued + 1;  -- this job
                END IF;
                -- The counts include this job.
                IF v_queued - 1 >= (s->>'max_queued')::INTEGER THEN
                    outcome := 'queued_cap';
                    counted := v_queued - 1;
                ELSIF v_account.id IS NULL THEN
                    outcome := 'accepted';
                ELSIF v_account.max_concurrent_jobs IS NOT NULL
                    AND v_queued - 1 + v_processing >= v_account.max_concurrent_jobs THEN
                    outcome := 'concurrent_cap';
                    counted := v_queued - 1 + v_processing;
                    cap := v_account.max_concurrent_jobs;
                ELSIF v_cost <> 0 AND v_account.max_daily_spend IS NOT NULL THEN
                    SELECT coalesce(sum(j.credit_cost), 0) - v_cost INTO counted
                    FROM jobs AS j
                    WHERE j.account_id = v_account_id
                        AND j.created_at >= (s->>'day_start')::BIGINT
                        AND j.status NOT IN ('FAILED', 'CANCELLED');
                    IF counted + v_cost > v_account.max_daily_spend THEN
                        outcome := 'daily_cap';
                        cap := v_account.max_daily_spend;
                    ELSE
                        counted := NULL;
                    END IF;
                END IF;
                IF outcome IS NULL AND v_cost <> 0 THEN
                    UPDATE accounts AS a SET credits = a.credits - v_cost
                    WHERE a.id = v_account_id AND a.credits >= v_cost
                    RETURNING a.credits INTO v_balance;
                    IF FOUND THEN
                        INSERT INTO ledger_entries
                            (account_id, job_id, kind, amount, balance_after, note, created_at)
                        VALUES (v_account_id, v_job_id, 'reserve', -v_cost, v_balance, NULL,
                                v_now);
                    ELSE
                        outcome := 'credits';
                        SELECT a.credits INTO counted FROM accounts AS a WHERE a.id = v_account_id;
                    END IF;
                END IF;
                outcome := coalesce(outcome, 'accepted');
            END IF;
            IF outcome NOT IN ('accepted', 'replayed') THEN
                -- Undo this submit's writes (and a lock it took); the outcome stays set.
                RAISE EXCEPTION USING ERRCODE = 'IGREF';
            END IF;
        EXCEPTION
            WHEN SQLSTATE 'IGREF' THEN
                v_counted_for := NULL;
            WHEN OTHERS THEN
                outcome := 'retry';
                job_id := NULL;
                status := NULL;
                counted := NULL;
                cap := NULL;
                v_counted_for := NULL;
        END;
        RETURN NEXT;
    END LOOP;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(SUBMIT_JOBS)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION submit_jobs(JSONB)")
    # 0011's function, as 0011 made it.
    earlier("0011_postgres_submit_many.py").upgrade()
