"""PostgreSQL: a submit's statements in one call, ``submit_job``

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

A submit was one round trip per statement: the Idempotency-Key's lookup, drop and insert, the
job, its ``queued`` event, the NOTIFY, the admission lock (0009), the daily spend, the credit
reservation and its ledger row; with pool pre-ping, BEGIN and COMMIT, 8 to 11 trips, each a
wake-up of the submitting thread, and the account row stayed locked across the last ones.
``submit_job`` runs them server-side in the same order and returns what the caller needs to
answer: ``accepted``, ``replayed`` (with the original job), ``conflict``, or the cap that
refused it with the counts the error body shows. A refusal writes nothing only because the
caller then raises and the whole transaction rolls back, as before; a lost race for the key
still fails the key's insert with a unique violation, which the caller retries.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION submit_job(
            p_job_id VARCHAR,
            p_account_id VARCHAR,
            p_api_key_id VARCHAR,
            p_model VARCHAR,
            p_prompt TEXT,
            p_input JSONB,
            p_params JSONB,
            p_outputs_expected INTEGER,
            p_sandbox BOOLEAN,
            p_cost BIGINT,
            p_webhook_url TEXT,
            p_webhook_events JSONB,
            p_retention_days INTEGER,
            p_now BIGINT,
            p_deadline_at BIGINT,
            p_key VARCHAR,
            p_fingerprint VARCHAR,
            p_key_expires_at BIGINT,
            p_max_queued INTEGER,
            p_day_start BIGINT,
            OUT outcome TEXT,
            OUT job_id VARCHAR,
            OUT status VARCHAR,
            OUT counted BIGINT,
            OUT cap BIGINT
        ) LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            v_fingerprint VARCHAR;
            v_lock RECORD;
            v_account accounts;
            v_queued INTEGER;
            v_processing INTEGER;
            v_balance BIGINT;
        BEGIN
            job_id := p_job_id;
            status := 'QUEUED';
            IF p_key IS NOT NULL THEN
                SELECT k.fingerprint, k.job_id INTO v_fingerprint, job_id
                FROM idempotency_keys AS k
                WHERE k.account_id = p_account_id AND k.key = p_key AND k.expires_at > p_now;
                IF FOUND THEN
                    IF v_fingerprint <> p_fingerprint THEN
                        outcome := 'conflict';
                        RETURN;
                    END IF;
                    outcome := 'replayed';
                    SELECT j.status INTO status FROM jobs AS j WHERE j.id = job_id;
                    status := coalesce(status, 'QUEUED');
                    RETURN;
                END IF;
                job_id := p_job_id;
                DELETE FROM idempotency_keys AS k
                WHERE k.account_id = p_account_id AND k.key = p_key AND k.expires_at <= p_now;
                INSERT INTO idempotency_keys
                    (account_id, key, fingerprint, job_id, created_at, expires_at)
                VALUES (p_account_id, p_key, p_fingerprint, p_job_id, p_now, p_key_expires_at);
            END IF;
            INSERT INTO jobs (
                id, account_id, api_key_id, model, status, step, progress, prompt, input,
                params, outputs_expected, sandbox, credit_cost, webhook_url, webhook_events,
                retention_days, run_at, created_at, updated_at, deadline_at
            ) VALUES (
                p_job_id, p_account_id, p_api_key_id, p_model, 'QUEUED', 'submit', 0, p_prompt,
                p_input, p_params, p_outputs_expected, p_sandbox, p_cost, p_webhook_url,
                p_webhook_events, p_retention_days, p_now, p_now, p_now, p_deadline_at
            );
            INSERT INTO job_events (job_id, at, kind, data)
            VALUES (p_job_id, p_now, 'queued', jsonb_build_object('cost', p_cost));
            NOTIFY imagegate_jobs;
            -- Admitted last, so the account stays locked only from here to the commit. The
            -- counts include this job.
            SELECT * INTO v_lock FROM lock_account_for_admission(p_account_id);
            v_account := v_lock.account;
            v_queued := v_lock.queued_jobs;
            v_processing := v_lock.processing_jobs;
            v_queued := v_queued - 1;
            IF v_queued >= p_max_queued THEN
                outcome := 'queued_cap';
                counted := v_queued;
                RETURN;
            END IF;
            IF v_account.id IS NULL THEN
                outcome := 'accepted';
                RETURN;
            END IF;
            IF v_account.max_concurrent_jobs IS NOT NULL
                AND v_queued + v_processing >= v_account.max_concurrent_jobs THEN
                outcome := 'concurrent_cap';
                counted := v_queued + v_processing;
                cap := v_account.max_concurrent_jobs;
                RETURN;
            END IF;
            IF p_cost <> 0 AND v_account.max_daily_spend IS NOT NULL THEN
                SELECT coalesce(sum(j.credit_cost), 0) - p_cost INTO counted
                FROM jobs AS j
                WHERE j.account_id = p_account_id AND j.created_at >= p_day_start
                    AND j.status NOT IN ('FAILED', 'CANCELLED');
                IF counted + p_cost > v_account.max_daily_spend THEN
                    outcome := 'daily_cap';
                    cap := v_account.max_daily_spend;
                    RETURN;
                END IF;
                counted := NULL;
            END IF;
            IF p_cost <> 0 THEN
                UPDATE accounts AS a SET credits = a.credits - p_cost
                WHERE a.id = p_account_id AND a.credits >= p_cost
                RETURNING a.credits INTO v_balance;
                IF NOT FOUND THEN
                    outcome := 'credits';
                    SELECT a.credits INTO counted FROM accounts AS a WHERE a.id = p_account_id;
                    RETURN;
                END IF;
                INSERT INTO ledger_entries
                    (account_id, job_id, kind, amount, balance_after, note, created_at)
                VALUES (p_account_id, p_job_id, 'reserve', -p_cost, v_balance, NULL, p_now);
            END IF;
            outcome := 'accepted';
        END
        $$
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "DROP FUNCTION submit_job(VARCHAR, VARCHAR, VARCHAR, VARCHAR, TEXT, JSONB, JSONB,"
        " INTEGER, BOOLEAN, BIGINT, TEXT, JSONB, INTEGER, BIGINT, BIGINT, VARCHAR, VARCHAR,"
        " BIGINT, INTEGER, BIGINT)"
    )
